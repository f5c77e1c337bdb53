"""Cassandra and Kafka SIGKILLed under load and started again, on a private pair of them.

What a user relies on through a store's crash: every message answered 201 reaches its
recipient's mailbox exactly once, every mailbox stays gap-free, no request gets a 500
(a store that is away is a 503 with Retry-After), sending works again within seconds of the
store answering, and a send retried with its Idempotency-Key after an outage is one message.

The stores killed here are this module's own (own ports, own state directory), so the rest
of the suite keeps its Kafka and Cassandra. The local node's commit log is the one the
launcher configures (BACKBONE_CASSANDRA_COMMITLOG_SYNC; `periodic` loses acknowledged
writes here, which is why the launcher does not use it).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from backbone.settings import ClusterSettings, InfraSettings
from deploy import infra
from deploy.cassandra import Cassandra
from deploy.kafka import Kafka
from tests.integration.api_client import Party, new_party, relate
from tests.integration.stack import Stack, own_infra_settings
from tests.integration.test_mailbox_api import _mailbox

pytestmark = pytest.mark.integration

SENDERS = 4
CASSANDRA_KILLS = 2  # the loss window is short: one kill may miss it, two rarely both do
OUTAGE_S = 3.0  # how long a killed store stays down before it is started again
BACK_WITHIN_S = 10.0  # from the store answering again to the next 201


@pytest.fixture(scope="module")
def private_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraSettings]:
    settings = own_infra_settings(tmp_path_factory.mktemp("faults-infra"))
    infra.up(settings, echo=False)
    try:
        yield settings
    finally:
        infra.down(settings, echo=False)


@pytest.fixture(scope="module")
def fault_stack(
    private_infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    cluster = ClusterSettings(
        kafka_bootstrap=private_infra.kafka_bootstrap,
        cassandra_contact_points=("127.0.0.1",),
        cassandra_port=private_infra.cassandra_port,
        keyspace="faults",
        topic_prefix="faults.",
    )
    stack = Stack(cluster, tmp_path_factory.mktemp("faults-stack"))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def http(fault_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fault_stack.base_url, timeout=60) as client:
        yield client


@dataclass
class Load:
    """Senders posting messages until stopped; what each request got, by status."""

    http: httpx.AsyncClient
    pairs: list[tuple[Party, Party]]
    accepted: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable: Counter[str] = field(default_factory=Counter)  # 503s by their message
    last_201: float = 0.0
    failures: list[str] = field(default_factory=list)
    just_accepted: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for _, recipient in self.pairs:
            self.accepted.setdefault(recipient.address, [])
        self._tasks = [asyncio.create_task(self._send_from(s, r)) for s, r in self.pairs]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _send_from(self, sender: Party, recipient: Party) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            body = {
                "recipients": [{"address": recipient.address, "encryptedKey": "a2V5"}],
                "body": base64.b64encode(f"message {n}".encode()).decode(),
            }
            try:
                answer = await self.http.post("/api/v1/Messages", json=body, headers=sender.headers)
            except httpx.HTTPError as exc:  # the API itself never goes away here
                self.failures.append(f"{type(exc).__name__}")
                continue
            self.statuses[answer.status_code] += 1
            if answer.status_code == 201:
                self.accepted[recipient.address].append(answer.json()["result"]["id"])
                self.last_201 = time.monotonic()
                self.just_accepted.set()
            elif answer.status_code == 503:
                assert answer.headers.get("Retry-After"), answer.text
                self.unavailable[answer.json()["error"]["message"][:60]] += 1
                await asyncio.sleep(0.2)
            else:
                self.failures.append(f"{answer.status_code} {answer.text[:200]}")

    def sent_since(self, moment: float) -> bool:
        return self.last_201 > moment


async def _kill_right_after_a_201(load: Load, service: Cassandra | Kafka) -> None:
    """SIGKILL the store within milliseconds of a 201: the writes behind that answer are
    then as fresh as they can be (a node that loses recent acknowledged writes loses them)."""
    pid = service.process.pid()
    assert pid is not None, f"{service.name} is not running"
    load.just_accepted.clear()
    await asyncio.wait_for(load.just_accepted.wait(), timeout=30)
    os.kill(pid, signal.SIGKILL)


async def _kill_and_restart(load: Load, settings: InfraSettings, service: Cassandra) -> float:
    """Kill the store under load, leave it down for OUTAGE_S, start it again; returns the
    moment it answered again."""
    await _kill_right_after_a_201(load, service)
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(infra.up, settings, False)
    return time.monotonic()


async def _back_after(load: Load, answered_at: float) -> float:
    deadline = answered_at + 60
    while time.monotonic() < deadline:
        if load.sent_since(answered_at):
            break
        await asyncio.sleep(0.05)
    assert load.sent_since(answered_at), "no message was accepted within 60 s of the restart"
    return load.last_201 - answered_at


def _message_ids(entries: list[dict[str, Any]]) -> list[str]:
    return [
        str(e["payload"].get("messageId") or e["payload"].get("id"))
        for e in entries
        if e["type"] == "MessageReceived"
    ]


async def _assert_every_accepted_message_once(
    http: httpx.AsyncClient, load: Load, pairs: list[tuple[Party, Party]]
) -> None:
    recipients = {r.address: r for _, r in pairs}
    senders = {r.address: s for s, r in pairs}
    for address, wanted in load.accepted.items():
        # The message itself, as its sender reads it (a recipient's read would add entries).
        for message_id in wanted:
            answer = await http.get(
                f"/api/v1/Messages/{message_id}", headers=senders[address].headers
            )
            assert answer.status_code == 200, f"message answered 201, then {answer.text}"
        want = set(wanted)
        assert len(want) == len(wanted), "the API answered two sends with one id"
        deadline = time.monotonic() + 90
        while True:
            entries = await _mailbox(http, recipients[address])
            received = _message_ids(entries)
            if want <= set(received) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert [e["index"] for e in entries] == list(range(1, len(entries) + 1)), "a gap"
        doubled = [m for m, c in Counter(received).items() if c > 1]
        assert not doubled, f"delivered twice: {doubled[:3]}"
        missing = want - set(received)
        assert not missing, f"{len(missing)} of {len(want)} messages answered 201 never arrived"


async def _pairs(http: httpx.AsyncClient) -> list[tuple[Party, Party]]:
    pairs = [(await new_party(http), await new_party(http)) for _ in range(SENDERS)]
    for sender, recipient in pairs:
        await relate(http, recipient, sender)
    return pairs


async def _follow_stream(http: httpx.AsyncClient, who: Party, lines: list[str]) -> None:
    """Read one mailbox stream until it ends (or the task is cancelled)."""
    headers = {**who.headers, "Accept": "text/event-stream"}
    async with http.stream("GET", "/api/v1/Mailbox", headers=headers) as answer:
        async for line in answer.aiter_lines():
            lines.append(line)


async def test_killing_cassandra_under_load_loses_nothing_answered_201(
    http: httpx.AsyncClient, private_infra: InfraSettings
) -> None:
    pairs = await _pairs(http)
    load = Load(http, pairs)
    stream_lines: list[str] = []
    stream = asyncio.create_task(_follow_stream(http, pairs[0][1], stream_lines))
    load.start()
    back_after: list[float] = []
    try:
        for _ in range(CASSANDRA_KILLS):
            await asyncio.sleep(4)  # under load; the kill itself waits for a fresh 201
            answered = await _kill_and_restart(load, private_infra, Cassandra(private_infra))
            back_after.append(await _back_after(load, answered))
        await asyncio.sleep(2)
    finally:
        await load.stop()
        ended = stream.done()
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
    print(f"statuses {dict(load.statuses)}; 201 again after {back_after} s; stream {ended=}")
    print(f"503s: {dict(load.unavailable)}")
    # An open stream whose read hits the outage ends by saying so (and when to come back),
    # not by a dropped connection. Whether a read falls into the outage depends on the
    # restart's speed against the stream's 15 s heartbeat (one CI run's did not), so the
    # ending itself is pinned by tests/unit/test_mailbox_follow.py.
    if ended:
        assert "event: unavailable" in stream_lines[-4:], stream_lines[-4:]
    assert not load.failures, load.failures[:5]
    assert load.statuses[500] == 0
    assert load.statuses[503] > 0, "the kill did not land on any request"
    assert max(back_after) <= BACK_WITHIN_S, back_after
    await _assert_every_accepted_message_once(http, load, pairs)


async def test_killing_kafka_under_load_loses_nothing_and_a_keyed_retry_is_one_message(
    http: httpx.AsyncClient, private_infra: InfraSettings
) -> None:
    pairs = await _pairs(http)
    load = Load(http, pairs)
    sender, recipient = pairs[0]
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}", **sender.headers}
    keyed = {
        "recipients": [{"address": recipient.address, "encryptedKey": "a2V5"}],
        "body": base64.b64encode(b"sent during the outage").decode(),
    }
    load.start()
    try:
        await asyncio.sleep(4)
        await _kill_right_after_a_201(load, Kafka(private_infra))
        during = await http.post("/api/v1/Messages", json=keyed, headers=key)
        assert during.status_code == 503, during.text
        assert during.json()["error"]["writeOutcome"] in ("unknown", "notApplied")
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(infra.up, private_infra, False)
        answered = time.monotonic()
        # The client follows the 503's advice: the same request, the same key, until it is
        # answered; each answer names the same message.
        ids: set[str] = set()
        deadline = answered + 60
        while not ids and time.monotonic() < deadline:
            again = await http.post("/api/v1/Messages", json=keyed, headers=key)
            assert again.status_code in (201, 503), again.text
            if again.status_code == 201:
                ids.add(again.json()["result"]["id"])
            else:
                await asyncio.sleep(0.5)
        assert ids, "the keyed send was never accepted after the outage"
        once_more = await http.post("/api/v1/Messages", json=keyed, headers=key)
        assert once_more.status_code == 201, once_more.text
        ids.add(once_more.json()["result"]["id"])
        back_after = await _back_after(load, answered)
        await asyncio.sleep(2)
    finally:
        await load.stop()
    print(f"statuses {dict(load.statuses)}; 201 again after {back_after:.1f} s")
    assert len(ids) == 1, ids
    assert not load.failures, load.failures[:5]
    assert load.statuses[500] == 0
    assert back_after <= BACK_WITHIN_S
    load.accepted[recipient.address] += list(ids)
    await _assert_every_accepted_message_once(http, load, pairs)

    other = {**keyed, "body": base64.b64encode(b"another body").decode()}
    reused = await http.post("/api/v1/Messages", json=other, headers=key)
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "error.platform.validation.idempotencyKeyReused"
