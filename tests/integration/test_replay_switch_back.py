"""`backbone replay switch --back` on real Kafka and Cassandra: after a switch to a rebuilt
keyspace, the API and the worker go back to the old one while a client keeps sending and
reading, and not one request fails. The old keyspace resumes from where the first switch
left it: only what was appended since is replayed, not the log; an identity deleted in the
meantime leaves no row and no data key in it. Going back to a keyspace a switch dropped is
refused with one line, and changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backbone.audit.logread import log_bounds, partitions_of
from backbone.settings import ClusterSettings
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames
from tests.integration.api_client import new_party, relate, send
from tests.integration.stack import Stack, own_stack
from tests.integration.test_identity_deletion import _traces, _until
from tests.integration.test_replay_switch import Client, _backbone

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    cluster_settings: ClusterSettings,
    kafka_topics: None,
    cassandra_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    live = f"{cluster_settings.keyspace}_swback"
    try:
        yield from own_stack(
            cluster_settings,
            cassandra_session,
            tmp_path_factory,
            "swback",
            # An identity's deletion done in seconds (a "day" of grace period is 2 s).
            BACKBONE_DELETION_DAY_S="2",
            BACKBONE_DELETION_POLL_S="1",
            BACKBONE_DELETION_LEASE_S="4",
            BACKBONE_DELETION_STEP_PAUSE_S="0",
        )
    finally:
        for name in (live, f"{live}_new", f"{live}_control"):
            cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)


async def _log_size(stack: Stack) -> int:
    """Records on the topics a replay reads: what a replay from the beginning would take."""
    names = TopicNames(stack.cluster.topic_prefix)
    bootstrap = stack.cluster.kafka_bootstrap
    size = 0
    for topic in (names.events, names.mailbox_entries):
        for p in await partitions_of(bootstrap, topic):
            start, end = await log_bounds(bootstrap, topic, p)
            size += end - start
    return size


async def _switch(stack: Stack, *argv: str) -> dict[str, Any]:
    done = await asyncio.to_thread(_backbone, stack, "replay", "switch", *argv, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)  # what the operator sees, in the test's output (-s)
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


async def test_switching_back_replays_only_what_came_since_and_fails_no_request(
    stack: Stack, cassandra_session: Any
) -> None:
    old = stack.cluster.keyspace
    new = f"{old}_new"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120) as http:
        a, b = await new_party(http), await new_party(http)
        await relate(http, a, b)
        # x is deleted while NEW is served; y, its peer, keeps what x sent it.
        gone = (await new_party(http), await new_party(http))
        await relate(http, gone[1], gone[0])
        to_y = {
            "recipients": [{"address": gone[1].address, "encryptedKey": "a2V5"}],
            "body": "aGk=",
        }
        sent_x = await http.post("/api/v1/Messages", json=to_y, headers=gone[0].headers)
        assert sent_x.status_code == 201, sent_x.text
        for i in range(20):
            await send(http, a, [b], f"before {i}".encode())
        rebuilt = await asyncio.to_thread(_backbone, stack, "replay", "--keyspace", new)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        there = await _switch(stack, "--keyspace", new)
        assert there["old"] == old and not there["dropped_old"]
        at_first_switch = await _log_size(stack)

        # Served from NEW for a while: what OLD has to catch up with on the way back,
        # including the deletion of an identity OLD holds rows of (a message, a peer).
        for i in range(5):
            await send(http, a, [b], f"on the new keyspace {i}".encode())
        x = gone[0]
        processes = "/api/v2/Identities/Self/DeletionProcesses"
        started = await http.post(
            processes, json={"lengthOfGracePeriodInDays": 1}, headers=x.headers
        )
        assert started.status_code == 201, started.text

        async def deleted() -> bool:
            answer = await http.get(
                "/api/v2/Identities/IsDeleted", params={"username": x.usernames[0]}
            )
            return bool(answer.json()["result"]["isDeleted"])

        await _until(deleted, 90, "the identity's deletion")
        shown = await asyncio.to_thread(_backbone, stack, "replay", "pointer", "--json")
        left = json.loads(shown.stdout)["left"]
        assert [(h["keyspace"], h["dropped"]) for h in left] == [(old, False)]

        client = Client(http, a, b)
        stop = asyncio.Event()
        running = asyncio.create_task(client.run(stop))
        try:
            await asyncio.sleep(2)
            back = await _switch(stack, "--back")
            at_switch_back = await _log_size(stack)  # the client goes on: a bound
            before = client.requests
            await asyncio.sleep(3)  # and goes on on the old keyspace
        finally:
            stop.set()
            await running
        assert client.failures == [], client.failures
        assert client.requests > before + 3, "the client made no progress after the switch"
        assert back["old"] == new and back["new"] == old and back["resumed"]
        # Only the tail: what was appended since the first switch, not the log. (The
        # workers' committed positions are the resume point: they were idle then, so at
        # the log's end, give or take a few records of an uncommitted last poll.)
        replayed = back["online_records"] + back["paused_records"]
        tail = at_switch_back - at_first_switch
        assert 0 < replayed <= tail + 10, (replayed, tail, at_first_switch)
        assert replayed < at_switch_back - 50, (replayed, at_switch_back)

        print((await asyncio.to_thread(_backbone, stack, "replay", "pointer")).stdout)
        shown = await asyncio.to_thread(_backbone, stack, "replay", "pointer", "--json")
        pointer = json.loads(shown.stdout)
        assert pointer["pointer"]["active"] == old
        assert {c["on_keyspace"] for c in pointer["clients"]} == {old}

        # Everything is in OLD: what was sent before the first switch, on NEW, and
        # throughout the switch back, in a mailbox numbered 1..n without a gap.
        page = await http.get("/api/v1/Mailbox?since=0&limit=1000", headers=b.headers)
        assert page.status_code == 200, page.text
        entries = page.json()["result"]
        assert [e["index"] for e in entries] == list(range(1, len(entries) + 1))
        received = [e for e in entries if e["type"] == "MessageReceived"]
        assert len(received) == 25 + len(client.sent), (len(received), len(client.sent))
        seen = json.dumps(entries)
        assert [m for m in client.sent if m not in seen] == []
        # No row of OLD names the identity deleted while it was not served, nor holds its
        # data key: what the deletion did in NEW, the switch back did in OLD.
        key_id = EnvelopeCodec(stack.master_key_b64, lambda k: b"").identity_key_id(x.address)
        needles = [x.address, key_id, *x.usernames]
        assert await asyncio.to_thread(_traces, cassandra_session, old, needles) == []
        assert back["erased_identities"] == 1 and back["data_keys_removed"] == 1, back

        newcomer = await new_party(http)
        await relate(http, newcomer, b)
        mid = await send(http, newcomer, [b], b"after the switch back")
        read = await http.get(f"/api/v1/Messages/{mid}", headers=b.headers)
        assert read.status_code == 200, read.text

        # Forward again, dropping OLD: then there is no going back, and nothing changes.
        again = await _switch(stack, "--keyspace", new, "--drop-old")
        assert again["resumed"] and again["dropped_old"]
        refused = await asyncio.to_thread(_backbone, stack, "replay", "switch", "--back")
        print(refused.stderr)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.count("\n") == 1 and f"{old} was dropped" in refused.stderr
        shown = await asyncio.to_thread(_backbone, stack, "replay", "pointer", "--json")
        assert json.loads(shown.stdout)["pointer"]["active"] == new
