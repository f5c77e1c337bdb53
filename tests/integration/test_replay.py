"""`backbone replay` on real Kafka and Cassandra: a stack with identities, relationships,
messages and files is replayed into a fresh keyspace and `replay verify` reports every
table identical, mailbox indexes included; a replay killed half-way resumes and ends
identical; a row missing from the rebuilt keyspace is named."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from backbone.settings import ClusterSettings
from tests.integration.api_client import Party, new_party, relate, request_relationship, send
from tests.integration.stack import Stack, own_stack

pytestmark = pytest.mark.integration

FULL_REPLAY: list[int] = []  # records the first test's whole replay took


async def _mailbox_size(http: httpx.AsyncClient, who: Party) -> int:
    page = await http.get("/api/v1/Mailbox?since=0&limit=1000", headers=who.headers)
    return len(page.json()["result"])


@pytest.fixture(scope="module")
def stack(
    cluster_settings: ClusterSettings,
    kafka_topics: None,
    cassandra_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A stack of these tests' own (own keyspace, own topics): `replay verify` compares whole
    keyspaces, so rows that other tests write straight into the suite's keyspace must not be
    in the live side."""
    yield from own_stack(cluster_settings, cassandra_session, tmp_path_factory, "replay")


@pytest.fixture(scope="module")
async def populated(stack: Stack) -> AsyncIterator[list[Party]]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        a, b, c = [await new_party(http) for _ in range(3)]
        await relate(http, a, b)
        await relate(http, a, c)
        await request_relationship(http, b, c)  # stays pending
        for i in range(6):
            await send(http, a, [b, c], f"to both {i}".encode())
            await send(http, b, [a], f"answer {i}".encode())
        mid = await send(http, c, [a], b"read me")
        assert (await http.get(f"/api/v1/Messages/{mid}", headers=a.headers)).status_code == 200
        data = os.urandom(3000)
        form = {
            "cipherHash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "expiresAt": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
        blob = {"content": ("blob", data, "application/octet-stream")}
        up = await http.post("/api/v1/Files", headers=a.headers, data=form, files=blob)
        assert up.status_code == 201, up.text
        token = {"content": "dG9rZW4=", "expiresAt": form["expiresAt"]}
        assert (await http.post("/api/v1/Tokens", json=token, headers=b.headers)).status_code == 201
        # Quiet: every mailbox stops growing (the worker has sequenced everything).
        sizes: list[int] = []
        for _ in range(100):
            now = [await _mailbox_size(http, p) for p in (a, b, c)]
            if now == sizes and all(now):
                break
            sizes = now
            await asyncio.sleep(0.5)
        yield [a, b, c]


@pytest.fixture(scope="module")
def keyspaces(stack: Stack, cassandra_session: Any) -> Iterator[list[str]]:
    names = [f"{stack.cluster.keyspace}_r{i}" for i in range(3)]
    yield names
    for name in names:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)


async def _backbone(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "backbone.cli", *argv]
    return await asyncio.to_thread(
        subprocess.run, cmd, env=stack.env, capture_output=True, text=True, timeout=300
    )


def _replayed(out: str) -> int:
    found = re.search(r"replayed (\d+) records", out)
    assert found, out
    return int(found.group(1))


async def test_replay_rebuilds_every_table_identical_mailbox_indexes_included(
    stack: Stack, populated: list[Party], keyspaces: list[str], cassandra_session: Any
) -> None:
    target = keyspaces[0]
    done = await _backbone(stack, "replay", "--keyspace", target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _replayed(done.stdout) > 50
    FULL_REPLAY.append(_replayed(done.stdout))
    verified = await _backbone(stack, "replay", "verify", "--keyspace", target)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every table identical" in verified.stdout
    rows = {line.split()[0]: line.split() for line in verified.stdout.splitlines()[1:] if line}
    for table in (
        "identities",
        "relationships",
        "messages",
        "files",
        "file_chunks",
        "mailbox",
        "mailbox_heads",
        "tokens",
    ):
        assert table in rows and int(rows[table][1]) > 0 and rows[table][3] == "identical", table
    # The same indexes, not merely the same count: compare one identity's mailbox directly.
    a = populated[0].address
    q = "SELECT idx, source_event_id FROM {}.mailbox WHERE address = %s"
    live = list(cassandra_session.execute(q.format(stack.cluster.keyspace), (a,)))
    rebuilt = list(cassandra_session.execute(q.format(target), (a,)))
    assert live == rebuilt and [r.idx for r in live] == list(range(1, len(live) + 1))

    # A difference is named: one mailbox row gone from the rebuilt keyspace.
    delete = f"DELETE FROM {target}.mailbox WHERE address = %s AND idx = 2"  # noqa: S608
    cassandra_session.execute(delete, (a,))
    broken = await _backbone(stack, "replay", "verify", "--keyspace", target)
    assert broken.returncode == 1
    line = next(x for x in broken.stdout.splitlines() if x.startswith("mailbox "))
    assert "DIFFERENT" in line and "1 missing" in line and a in line and ", 2]" in line


def _checkpointed(session: Any, keyspace: str) -> int:
    """Offsets the replay has saved as done, over all partitions (0 before it saved any)."""
    query = f"SELECT next_offset FROM {keyspace}.replay_progress"  # noqa: S608
    try:
        return sum(r.next_offset for r in session.execute(query))
    except Exception:  # the table does not exist yet
        return 0


async def test_a_replay_killed_half_way_resumes_and_ends_identical(
    stack: Stack, populated: list[Party], keyspaces: list[str], cassandra_session: Any
) -> None:
    target = keyspaces[1]
    cmd = [
        sys.executable,
        "-m",
        "backbone.cli",
        "replay",
        "--keyspace",
        target,
        "--batch",
        "3",
        "--throttle",
        "0.2",
    ]
    slow = await asyncio.create_subprocess_exec(
        *cmd, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):  # until some batches are checkpointed
            await asyncio.sleep(0.2)
            if _checkpointed(cassandra_session, target) >= 12:
                break
        assert slow.returncode is None, "the slow replay ended before it could be killed"
        slow.send_signal(signal.SIGKILL)
        await slow.wait()
    finally:
        if slow.returncode is None:
            slow.kill()
            await slow.wait()
    resumed = await _backbone(stack, "replay", "--keyspace", target)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # It went on from its checkpoints: fewer records than a whole replay of this log.
    assert FULL_REPLAY, "runs after the whole-replay test"
    assert 0 < _replayed(resumed.stdout) < FULL_REPLAY[0]
    verified = await _backbone(stack, "replay", "verify", "--keyspace", target)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "every table identical" in verified.stdout


def _partitions_done(session: Any, keyspace: str) -> int:
    query = f"SELECT partition FROM {keyspace}.replay_progress"  # noqa: S608
    try:
        return len(list(session.execute(query)))
    except Exception:  # the table does not exist yet
        return 0


async def test_a_following_replay_keeps_the_rebuilt_keyspace_identical_while_writes_go_on(
    stack: Stack, populated: list[Party], keyspaces: list[str], cassandra_session: Any
) -> None:
    """What a switch-over stands on: the rebuilt keyspace keeps up with the live one,
    a new identity (a data key made after the replay read the keys) included."""
    target = keyspaces[2]
    cmd = [sys.executable, "-m", "backbone.cli", "replay", "--keyspace", target, "--follow"]
    follower = await asyncio.create_subprocess_exec(
        *cmd, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):  # caught up: every partition has a checkpoint
            await asyncio.sleep(0.2)
            if _partitions_done(cassandra_session, target) == 8:  # 4 + 4 in the test stack
                break
        a, b = populated[0], populated[1]
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            newcomer = await new_party(http)
            await relate(http, a, newcomer)
            for i in range(3):
                await send(http, a, [b, newcomer], f"while following {i}".encode())
        verified = None
        for _ in range(30):  # until the worker and the follower have both caught up
            await asyncio.sleep(1)
            verified = await _backbone(stack, "replay", "verify", "--keyspace", target)
            if verified.returncode == 0:
                break
        assert verified is not None
        assert verified.returncode == 0, verified.stdout
        assert "every table identical" in verified.stdout
    finally:
        follower.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(follower.communicate(), 60)
    assert follower.returncode == 0
    assert "0 skipped" in out.decode()
