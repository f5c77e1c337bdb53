"""Messages and the per-identity mailbox through the real API, workers, Kafka and Cassandra."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from nacl.signing import SigningKey

from backbone.security.addresses import address_from_public_key
from connector.backbone_client import BackboneClient
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames
from tests.integration.api_client import PASSWORD, Party, b64, code_of, new_party, relate
from tests.integration.log_access import operator_codec
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration

# test_store_faults imports these helpers from here, under their old names.
NO_RELATIONSHIP = "error.platform.validation.message.noActiveRelationshipWithRecipient"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


async def _mailbox(http: httpx.AsyncClient, who: Party, since: int = 0) -> list[dict[str, Any]]:
    """Everything after `since`, page by page."""
    out: list[dict[str, Any]] = []
    while True:
        page = await http.get(f"/api/v1/Mailbox?since={since}&limit=1000", headers=who.headers)
        assert page.status_code == 200, page.text
        entries = page.json()["result"]
        if not entries:
            return out
        out += entries
        since = entries[-1]["index"]


async def _mailbox_until(
    http: httpx.AsyncClient, who: Party, done: Any, timeout_s: float = 60
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        entries = await _mailbox(http, who)
        if done(entries) or asyncio.get_running_loop().time() > deadline:
            return entries
        await asyncio.sleep(0.2)


def _assert_gap_free(entries: list[dict[str, Any]]) -> None:
    assert [e["index"] for e in entries] == list(range(1, len(entries) + 1))


async def test_a_message_to_three_recipients_reaches_each_mailbox_once(
    http: httpx.AsyncClient,
) -> None:
    sender = await new_party(http)
    recipients = [await new_party(http) for _ in range(3)]
    for r in recipients:
        await relate(http, sender, r)
    body = {
        "recipients": [
            {"address": r.address, "encryptedKey": b64(f"key {i}".encode())}
            for i, r in enumerate(recipients)
        ],
        "body": b64(b"ciphertext"),
    }
    sent = await http.post("/api/v1/Messages", json=body, headers=sender.headers)
    assert sent.status_code == 201, sent.text
    mid = sent.json()["result"]["id"]

    def received(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            e
            for e in entries
            if e["type"] == "MessageReceived" and e["payload"]["messageId"] == mid
        ]

    for i, r in enumerate(recipients):
        entries = await _mailbox_until(http, r, lambda es: bool(received(es)))
        await asyncio.sleep(0.3)  # a duplicate would arrive right behind
        entries = await _mailbox(http, r)
        _assert_gap_free(entries)
        mine = received(entries)
        assert len(mine) == 1
        assert mine[0]["payload"]["body"] == b64(b"ciphertext")  # small: rides along
        assert mine[0]["payload"]["encryptedKey"] == b64(f"key {i}".encode())
        got = await http.get(f"/api/v1/Messages/{mid}", headers=r.headers)
        assert got.json()["result"]["body"] == b64(b"ciphertext")
    # The sender's mailbox learns of the send and of each first read.
    entries = await _mailbox_until(
        http, sender, lambda es: sum(e["type"] == "MessageDelivered" for e in es) >= 3
    )
    _assert_gap_free(entries)
    delivered = {e["payload"]["recipient"] for e in entries if e["type"] == "MessageDelivered"}
    assert delivered == {r.address for r in recipients}
    listed = await http.get(f"/api/v1/Messages?ids={mid}", headers=sender.headers)
    receipts = listed.json()["result"][0]["recipients"]
    assert all(r["receivedAt"] is not None for r in receipts)


async def test_no_one_else_reads_a_message_or_a_mailbox(http: httpx.AsyncClient) -> None:
    sender, recipient, stranger = (
        await new_party(http),
        await new_party(http),
        await new_party(http),
    )
    await relate(http, sender, recipient)
    body = {
        "recipients": [{"address": recipient.address, "encryptedKey": "a2V5"}],
        "body": b64(b"private"),
    }
    mid = (await http.post("/api/v1/Messages", json=body, headers=sender.headers)).json()
    mid = mid["result"]["id"]
    answer = await http.get(f"/api/v1/Messages/{mid}", headers=stranger.headers)
    assert code_of(answer) == (404, "error.platform.recordNotFound")
    listed = await http.get("/api/v1/Messages", headers=stranger.headers)
    assert listed.json()["result"] == []
    # The mailbox has no "whose" parameter: each caller reads only its own.
    theirs = await _mailbox_until(http, recipient, lambda es: len(es) >= 3)
    mine = await _mailbox(http, stranger)
    assert {e["type"] for e in mine} == {"DeviceRegistered"}
    assert not {json.dumps(e["payload"]) for e in theirs} & {json.dumps(e["payload"]) for e in mine}
    cursors = await http.get("/api/v1/Mailbox/Cursor", headers=stranger.headers)
    assert cursors.json()["result"]["devices"] == []
    assert (await http.get("/api/v1/Mailbox")).status_code == 401


async def test_message_limits_give_clear_errors(http: httpx.AsyncClient) -> None:
    sender, peer = await new_party(http), await new_party(http)
    invalid = (400, "error.platform.validation.invalidPropertyValue")

    def to(addresses: list[str], body: bytes = b"x") -> dict[str, Any]:
        return {
            "recipients": [{"address": a, "encryptedKey": "a2V5"} for a in addresses],
            "body": b64(body),
        }

    strangers = [
        address_from_public_key(bytes(SigningKey.generate().verify_key), "localhost")
        for _ in range(51)
    ]
    cases = [
        (to(strangers), invalid),  # more than BACKBONE_MAX_RECIPIENTS (50)
        (to([]), invalid),
        (to([peer.address, peer.address]), invalid),
        (to([sender.address]), invalid),
        (to(["did:e:localhost:dids:0000000000000000000000"]), invalid),  # bad checksum
        (to([peer.address], b"x" * (32 * 1024 + 1)), invalid),
        (to([peer.address]), (400, NO_RELATIONSHIP)),
    ]
    for body, expected in cases:
        answer = await http.post("/api/v1/Messages", json=body, headers=sender.headers)
        assert code_of(answer) == expected, body["recipients"][:1]
    cursor = await http.put("/api/v1/Mailbox/Cursor", json={"index": -1}, headers=sender.headers)
    assert code_of(cursor) == invalid
    answer = await http.get("/api/v1/Mailbox?limit=1001", headers=sender.headers)
    assert code_of(answer) == invalid


async def test_cursor_is_kept_per_device_and_only_moves_forward(http: httpx.AsyncClient) -> None:
    me = await new_party(http)
    # A new identity's mailbox holds its first device's registration (index 1); a cursor
    # past the head is refused (issue 19, tests/integration/test_hardening.py).
    put = await http.put("/api/v1/Mailbox/Cursor", json={"index": 1}, headers=me.headers)
    assert put.json()["result"]["index"] == 1
    back = await http.put("/api/v1/Mailbox/Cursor", json={"index": 0}, headers=me.headers)
    assert back.json()["result"]["index"] == 1


async def _produce_entries(stack: Stack, codec: EnvelopeCodec, plan: list[str]) -> None:
    """Mailbox entries straight onto the sequencer's input, as the projector writes them:
    one per address in `plan`, in that order."""
    topic = TopicNames(stack.cluster.topic_prefix).mailbox_entries
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.cluster.kafka_bootstrap,
        linger_ms=20,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        sends = []
        for n, address in enumerate(plan):
            key = codec.aggregate_key("identity", address)
            entry = {
                "recipient": address,
                "event_type": "Synthetic",
                "payload_json": json.dumps({"n": n}),
                "source_event_id": str(uuid.uuid4()),
                "occurred_at": datetime.now(UTC),
            }
            sealed = codec.seal(
                "MailboxEntry",
                entry,
                aggregate_key=key,
                correlation_id="t",
                data_key_id=codec.identity_key_id(address),
            )
            sends.append(await producer.send(topic, sealed, key=key.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def _synthetic_in_order(entries: list[dict[str, Any]]) -> list[int]:
    return [e["payload"]["n"] for e in entries if e["type"] == "Synthetic"]


async def test_an_offline_recipient_catches_up_on_10000_entries_in_order(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    me = await new_party(http)
    codec = await operator_codec(stack)
    before = len(await _mailbox_until(http, me, lambda es: len(es) >= 1))
    await _produce_entries(stack, codec, [me.address] * 10_000)
    entries = await _mailbox_until(http, me, lambda es: len(es) >= before + 10_000, 120)
    _assert_gap_free(entries)
    assert _synthetic_in_order(entries) == list(range(10_000))


async def test_the_stream_resumes_from_last_event_id_without_loss(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    me = await new_party(http)
    codec = await operator_codec(stack)
    await _mailbox_until(http, me, lambda es: len(es) >= 1)
    headers = {**me.headers, "Accept": "text/event-stream"}
    got: list[int] = []

    async def read(n: int, last_id: int | None) -> None:
        extra = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        async with http.stream("GET", "/api/v1/Mailbox", headers={**headers, **extra}) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            async for line in sse.aiter_lines():
                if line.startswith("id: "):
                    got.append(int(line[4:]))
                    if len(got) >= n:
                        return

    first = asyncio.create_task(read(30, None))
    await asyncio.sleep(0.3)
    await _produce_entries(stack, codec, [me.address] * 100)
    await asyncio.wait_for(first, 30)  # disconnects after 30 entries
    await _produce_entries(stack, codec, [me.address] * 100)
    await asyncio.wait_for(read(201, got[-1]), 30)  # everything after the last one seen
    assert got == list(range(1, 202))


async def test_long_poll_answers_as_soon_as_an_entry_is_sequenced(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    me = await new_party(http)
    codec = await operator_codec(stack)
    last = (await _mailbox_until(http, me, lambda es: len(es) >= 1))[-1]["index"]
    poll = asyncio.create_task(
        http.get(f"/api/v1/Mailbox?since={last}&wait=30", headers=me.headers)
    )
    await asyncio.sleep(0.5)
    assert not poll.done()  # nothing new yet: the request is held
    started = asyncio.get_running_loop().time()
    await _produce_entries(stack, codec, [me.address])
    answer = await asyncio.wait_for(poll, 30)
    assert asyncio.get_running_loop().time() - started < 10
    assert [e["index"] for e in answer.json()["result"]] == [last + 1]


async def test_sync_runs_hand_out_external_events_once_and_retry_failures(
    http: httpx.AsyncClient,
) -> None:
    client = BackboneClient(http, CLIENT_ID, CLIENT_SECRET)
    logged_in = await client.create_identity_and_log_in(PASSWORD)
    identity, token = logged_in.identity, logged_in.token
    me = Party(logged_in.address, logged_in.headers)
    peer, other_peer = await new_party(http), await new_party(http)
    await relate(http, me, peer)
    await relate(http, me, other_peer)
    # The device, then per relationship: the allocation, the peer's request, my accept.
    entries = await _mailbox_until(http, me, lambda es: len(es) >= 7)
    head = entries[-1]["index"]

    started = await http.post("/api/v1/SyncRuns", json={}, headers=me.headers)
    assert started.status_code == 201, started.text
    run = started.json()["result"]["syncRun"]
    assert started.json()["result"]["status"] == "Created" and run["eventCount"] == head
    busy = await http.post("/api/v1/SyncRuns", json={}, headers=me.headers)
    assert code_of(busy)[1].endswith("cannotStartSyncRunWhenAnotherSyncRunIsRunning")
    events = (
        await http.get(f"/api/v1/SyncRuns/{run['id']}/ExternalEvents", headers=me.headers)
    ).json()["result"]
    # The Enmeshed sync hands out only what upstream would send (api/enmeshed_events.py):
    # the peers' requests, not the device, the allocations or my own accepts.
    requested = [
        e["index"]
        for e in entries
        if e["type"] == "RelationshipStatusChanged" and e["payload"].get("actor") != me.address
    ]
    assert [e["index"] for e in events] == requested and len(requested) == 2
    assert [e["type"] for e in events] == ["RelationshipStatusChanged"] * 2
    assert events[0]["payload"].keys() == {"relationshipId", "newStatus"}
    assert events[0]["id"] == f"EXT{requested[0]:017d}" and events[0]["syncErrorCount"] == 0

    # Another device of the identity may not finalize it; a stranger does not see it.
    second = await client.add_device(identity, token, "second device password")
    other = {"Authorization": f"Bearer {await client.token(second.username, second.password)}"}
    results = {"externalEventResults": [{"externalEventId": e["id"]} for e in events]}
    results["externalEventResults"][1]["errorCode"] = "error.runtime.cannotProcess"
    wrong = await http.put(
        f"/api/v1/SyncRuns/{run['id']}/FinalizeExternalEventSync", json=results, headers=other
    )
    assert code_of(wrong)[1].endswith("cannotFinalizeSyncRunStartedByAnotherDevice")
    assert code_of(await http.get(f"/api/v1/SyncRuns/{run['id']}", headers=peer.headers)) == (
        404,
        "error.platform.recordNotFound",
    )
    done = await http.put(
        f"/api/v1/SyncRuns/{run['id']}/FinalizeExternalEventSync", json=results, headers=me.headers
    )
    assert done.status_code == 200, done.text

    # The failed event comes again (with its error count), and nothing else: the device
    # registered meanwhile is new since the last run, so it comes too.
    again = (await http.post("/api/v1/SyncRuns", json={}, headers=other)).json()["result"]
    events = (
        await http.get(f"/api/v1/SyncRuns/{again['syncRun']['id']}/ExternalEvents", headers=other)
    ).json()["result"]
    assert events[0]["index"] == requested[1] and events[0]["syncErrorCount"] == 1
    assert all(e["index"] > head for e in events[1:])
    ok = {"externalEventResults": [{"externalEventId": e["id"]} for e in events]}
    await http.put(
        f"/api/v1/SyncRuns/{again['syncRun']['id']}/FinalizeExternalEventSync",
        json=ok,
        headers=other,
    )
    nothing = await http.post("/api/v1/SyncRuns", json={}, headers=me.headers)
    assert nothing.json()["result"] == {"status": "NoNewEvents", "syncRun": None}


async def test_datawallet_modifications_are_numbered_and_shared_by_devices(
    http: httpx.AsyncClient,
) -> None:
    me = await new_party(http)
    mods = {
        "modifications": [
            {
                "objectIdentifier": f"OBJ{i}",
                "collection": "Relationships",
                "type": "Create",
                "encryptedPayload": b64(b"enc"),
            }
            for i in range(3)
        ]
    }
    first = await http.post("/api/v1/Datawallet/Modifications", json=mods, headers=me.headers)
    assert first.status_code == 201, first.text
    # Numbered from 0, as Enmeshed numbers them; -1 is "nothing yet".
    assert [m["index"] for m in first.json()["result"]["modifications"]] == [0, 1, 2]
    second = await http.post("/api/v1/Datawallet/Modifications", json=mods, headers=me.headers)
    assert second.json()["result"]["newIndex"] == 5
    listed = await http.get("/api/v1/Datawallet/Modifications?localIndex=3", headers=me.headers)
    assert [m["index"] for m in listed.json()["result"]] == [4, 5]
    everything = await http.get(
        "/api/v1/Datawallet/Modifications?localIndex=-1", headers=me.headers
    )
    assert [m["index"] for m in everything.json()["result"]] == list(range(6))
    assert listed.json()["result"][0]["encryptedPayload"] == b64(b"enc")
    # A version upgrade locks out devices that only know the older version.
    run = await http.post(
        "/api/v1/SyncRuns", json={"type": "DatawalletVersionUpgrade"}, headers=me.headers
    )
    run_id = run.json()["result"]["syncRun"]["id"]
    # The upgrading device must support the new version (issue 19).
    supports_v2 = {**me.headers, "x-supported-datawallet-version": "2"}
    upgraded = await http.put(
        f"/api/v1/SyncRuns/{run_id}/FinalizeDatawalletVersionUpgrade",
        json={"newDatawalletVersion": 2},
        headers=supports_v2,
    )
    assert upgraded.status_code == 200, upgraded.text
    assert (await http.get("/api/v1/Datawallet", headers=me.headers)).json()["result"] == {
        "version": 2
    }
    path = "/api/v1/Datawallet/Modifications"
    v1 = {**me.headers, "x-supported-datawallet-version": "1"}
    old = await http.post(path, json=mods, headers=v1)
    assert code_of(old)[1].endswith("insufficientSupportedDatawalletVersion")
    v2 = {**me.headers, "x-supported-datawallet-version": "2"}
    new = await http.post(path, json=mods, headers=v2)
    assert new.status_code == 201


async def test_killing_the_worker_mid_run_leaves_every_mailbox_gap_and_duplicate_free(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    """20,000 entries over 10 identities; the worker is SIGKILLed while it sequences them
    and a new one takes over. Runs last in this module: it replaces the shared worker."""
    people = [await new_party(http) for _ in range(10)]
    codec = await operator_codec(stack)
    before = {
        p.address: len(await _mailbox_until(http, p, lambda es: len(es) >= 1)) for p in people
    }
    plan = [people[i % 10].address for i in range(20_000)]
    producing = asyncio.create_task(_produce_entries(stack, codec, plan))
    # Kill once the sequencer is well into the run.
    first = people[0].address
    await _mailbox_until(http, people[0], lambda es: len(es) >= before[first] + 300)
    stack.worker.stop(signal.SIGKILL)
    at_kill = len(await _mailbox(http, people[0])) - before[first]
    assert at_kill < 2_000  # the kill did land in the middle of the run
    await producing
    stack.start_worker()
    for p in people:
        want = before[p.address] + 2_000
        # Generous: on a loaded machine the new worker first waits out the dead one's session.
        entries = await _mailbox_until(http, p, lambda es, w=want: len(es) >= w, 400)
        _assert_gap_free(entries)
        numbers = _synthetic_in_order(entries)
        missing = sorted(set(range(plan.index(p.address), 20_000, 10)) - set(numbers))
        assert len(numbers) == 2_000, (p.address, len(numbers), missing[:5], missing[-5:])
        assert numbers == sorted(numbers)  # in the order they were produced


async def test_only_an_active_relationship_lets_messages_through(http: httpx.AsyncClient) -> None:
    owner, peer = await new_party(http), await new_party(http)
    message = {"recipients": [{"address": peer.address, "encryptedKey": "a2V5"}], "body": "eA=="}

    async def send() -> tuple[int, str]:
        answer = await http.post("/api/v1/Messages", json=message, headers=owner.headers)
        return (201, "") if answer.status_code == 201 else code_of(answer)

    template = await http.post(
        "/api/v1/RelationshipTemplates", json={"content": "eA=="}, headers=owner.headers
    )
    body = {"relationshipTemplateId": template.json()["result"]["id"], "creationContent": "eA=="}
    rid = (await http.post("/api/v1/Relationships", json=body, headers=peer.headers)).json()
    rid = rid["result"]["id"]
    assert await send() == (400, NO_RELATIONSHIP)  # Pending
    accepted = await http.put(f"/api/v1/Relationships/{rid}/Accept", headers=owner.headers)
    assert accepted.status_code == 200
    assert await send() == (201, "")
    ended = await http.put(f"/api/v1/Relationships/{rid}/Terminate", headers=owner.headers)
    assert ended.status_code == 200
    assert await send() == (400, NO_RELATIONSHIP)
