"""`backbone replay switch` on real Kafka and Cassandra: while a client keeps sending
messages and reading mailboxes and messages, the API and the worker are moved to a rebuilt
keyspace, the old one is dropped, and not one request failed; afterwards every message the
client sent is there, read from the new keyspace (the old one no longer exists), and a
newcomer's first message works (its data key was written by the worker into the new one)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backbone.settings import ClusterSettings
from tests.integration.api_client import Party, new_party, relate, send
from tests.integration.stack import Stack, own_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    cluster_settings: ClusterSettings,
    kafka_topics: None,
    cassandra_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    live = f"{cluster_settings.keyspace}_switch"
    try:
        yield from own_stack(cluster_settings, cassandra_session, tmp_path_factory, "switch")
    finally:
        for name in (live, f"{live}_new", f"{live}_control"):
            cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)


def _backbone(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "backbone.cli", *argv]
    return subprocess.run(cmd, env=stack.env, capture_output=True, text=True, timeout=300)


class Client:
    """Sends a message, reads the recipient's mailbox and the message, again and again;
    every answer that is not a success is a failure."""

    def __init__(self, http: httpx.AsyncClient, a: Party, b: Party) -> None:
        self.http, self.a, self.b = http, a, b
        self.sent: list[str] = []
        self.failures: list[str] = []
        self.requests = 0
        self.slowest = 0.0

    async def _call(self, method: str, url: str, **kw: Any) -> httpx.Response | None:
        started = time.monotonic()
        self.requests += 1
        try:
            answer = await self.http.request(method, url, **kw)
        except httpx.HTTPError as error:
            self.failures.append(f"{method} {url}: {type(error).__name__}")
            return None
        self.slowest = max(self.slowest, time.monotonic() - started)
        if answer.status_code >= 300:
            self.failures.append(f"{method} {url}: {answer.status_code} {answer.text[:200]}")
            return None
        return answer

    async def run(self, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            body = {
                "recipients": [{"address": self.b.address, "encryptedKey": "a2V5"}],
                "body": "aGVsbG8=",
            }
            sent = await self._call("POST", "/api/v1/Messages", json=body, headers=self.a.headers)
            if sent is not None:
                mid = str(sent.json()["result"]["id"])
                self.sent.append(mid)
                # Read-your-writes across the switch: a 201 means readable.
                await self._call("GET", f"/api/v1/Messages/{mid}", headers=self.b.headers)
            await self._call("GET", "/api/v1/Mailbox?since=0&limit=1000", headers=self.b.headers)


async def test_the_api_and_workers_move_to_the_rebuilt_keyspace_without_a_failed_request(
    stack: Stack, cassandra_session: Any
) -> None:
    old = stack.cluster.keyspace
    new = f"{old}_new"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120) as http:
        a, b = await new_party(http), await new_party(http)
        await relate(http, a, b)
        for i in range(5):
            await send(http, a, [b], f"before {i}".encode())
        rebuilt = await asyncio.to_thread(_backbone, stack, "replay", "--keyspace", new)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr

        client = Client(http, a, b)
        stop = asyncio.Event()
        running = asyncio.create_task(client.run(stop))
        try:
            await asyncio.sleep(3)  # the client writes to the old keyspace after the replay
            switched = await asyncio.to_thread(
                _backbone, stack, "replay", "switch", "--keyspace", new, "--drop-old", "--json"
            )
            assert switched.returncode == 0, switched.stdout + switched.stderr
            before = client.requests
            await asyncio.sleep(3)  # and goes on on the new one
        finally:
            stop.set()
            await running
        assert client.requests > before + 3, "the client made no progress after the switch"
        report = json.loads(switched.stdout.splitlines()[-1])
        assert report["old"] == old and report["new"] == new and report["dropped_old"]
        assert report["clients"] >= 2  # the API and the worker said where they were

        assert client.failures == [], client.failures
        assert len(client.sent) > 5

        # The old keyspace is gone: whatever the API reads now comes from the new one.
        keyspaces = {
            r.keyspace_name
            for r in cassandra_session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
        }
        assert old not in keyspaces and new in keyspaces
        pointer = await asyncio.to_thread(_backbone, stack, "replay", "pointer", "--json")
        shown = json.loads(pointer.stdout)
        assert shown["pointer"]["active"] == new and shown["pointer"]["phase"] == "serving"
        assert {c["on_keyspace"] for c in shown["clients"]} == {new}

        # Nothing missing: every message sent throughout is in b's mailbox and readable.
        page = await http.get("/api/v1/Mailbox?since=0&limit=1000", headers=b.headers)
        assert page.status_code == 200, page.text
        entries = page.json()["result"]
        assert [e["index"] for e in entries] == list(range(1, len(entries) + 1))
        seen = json.dumps(entries)
        missing = [m for m in client.sent if m not in seen]
        assert missing == []
        newcomer = await new_party(http)
        await relate(http, newcomer, b)
        mid = await send(http, newcomer, [b], b"after the switch")
        read = await http.get(f"/api/v1/Messages/{mid}", headers=b.headers)
        assert read.status_code == 200, read.text
    rows = cassandra_session.execute(f"SELECT count(*) FROM {new}.messages")  # noqa: S608
    assert rows.one()[0] >= len(client.sent) + 6
