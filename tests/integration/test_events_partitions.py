"""`backbone events` on real Kafka: reading only the partitions a key hashes to gives exactly
the records a read of every partition gives, for an aggregate, a raw key, an identity (its
own records on every partition of `events`, its mailbox entries on one), and a bounded
read keeps to its offsets. The records are written the way the API and the workers write
them: sealed envelopes keyed by their aggregate key, with the producer's default
partitioner."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone.events import Offsets, Selection, collect, selection_for
from backbone.settings import BackboneSettings, ClusterSettings
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames, ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = 6
IDENTITIES = [f"did:e:localhost:dids:{uuid.uuid4().hex[:22]}" for _ in range(5)]


@pytest.fixture(scope="module")
async def log(cluster_settings: ClusterSettings, kafka_topics: None) -> dict[str, Any]:
    """60 messages between 5 identities: on `events` a MessageSent (the sender's key) and
    its Reply keyed by the message, on `mailbox-entries` one entry per recipient keyed by it."""
    cluster = dataclasses.replace(
        cluster_settings, topic_prefix=f"{cluster_settings.topic_prefix}evparts."
    )
    master = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = BackboneSettings(cluster, master, base64.b64encode(bytes(32)).decode())
    names = TopicNames(cluster.topic_prefix)
    await ensure_topics(
        cluster.kafka_bootstrap,
        [s for s in names.specs(PARTITIONS) if s.name in (names.events, names.mailbox_entries)],
    )
    envelopes = EnvelopeCodec(master, lambda key_id: b"k" * 32)
    producer = AIOKafkaProducer(bootstrap_servers=cluster.kafka_bootstrap, acks="all")
    await producer.start()
    messages = []
    try:
        for i in range(60):
            sender, recipient = IDENTITIES[i % 5], IDENTITIES[(i + 1 + i // 5) % 5]
            mid = f"MSG{i:017d}"
            agg = envelopes.aggregate_key("message", mid)
            body = {"message_id": mid, "sender": sender, "recipient": recipient}
            sent = envelopes.seal(
                "MailboxEntry",  # any sealed body: these tests never open it
                {
                    "recipient": recipient,
                    "event_type": "MessageSent",
                    "payload_json": json.dumps(body),
                    "source_event_id": str(uuid.uuid4()),
                    "occurred_at": datetime.now(UTC),
                },
                aggregate_key=agg,
                correlation_id=str(uuid.uuid4()),
                data_key_id=envelopes.identity_key_id(sender),
                aggregate_version=1,
            )
            reply = envelopes.reply(str(uuid.uuid4()), 201)
            await producer.send_and_wait(names.events, sent, key=agg.encode())
            await producer.send_and_wait(names.events, reply, key=agg.encode())
            to = envelopes.aggregate_key("identity", recipient)
            entry = envelopes.seal(
                "MailboxEntry",
                {
                    "recipient": recipient,
                    "event_type": "MessageReceived",
                    "payload_json": json.dumps({"messageId": mid}),
                    "source_event_id": str(uuid.uuid4()),
                    "occurred_at": datetime.now(UTC),
                },
                aggregate_key=to,
                correlation_id=str(uuid.uuid4()),
                data_key_id=envelopes.identity_key_id(recipient),
            )
            await producer.send_and_wait(names.mailbox_entries, entry, key=to.encode())
            messages.append(mid)
    finally:
        await producer.stop()
    return {"settings": settings, "names": names, "messages": messages}


async def _both(log: dict[str, Any], sel: Selection, offsets: Offsets | None = None) -> Any:
    settings, names = log["settings"], log["names"]
    topics = [names.events, names.mailbox_entries]
    narrowed = await collect(settings, sel, topics, False, None, offsets)
    every = await collect(
        settings, dataclasses.replace(sel, all_partitions=True), topics, False, None, offsets
    )
    return narrowed, every


def _where(found: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return sorted((r["topic"], r["partition"], r["offset"]) for r in found)


async def test_a_narrowed_read_finds_exactly_what_a_full_read_finds(log: dict[str, Any]) -> None:
    settings = log["settings"]
    # One aggregate: its MessageSent (the Reply carries its correlation id instead).
    one = selection_for(settings, None, [f"message:{log['messages'][7]}"], [], [], None, None)
    narrowed, every = await _both(log, one)
    assert _where(narrowed) == _where(every) and len(every) == 1
    assert {r["partition"] for r in narrowed} == {r["partition"] for r in every}

    # A raw key, and several aggregates at once.
    keys = [next(iter(one.aggregate_keys))]
    aggs = [f"message:{m}" for m in log["messages"][10:14]]
    both = selection_for(settings, None, aggs, keys, [], None, None)
    narrowed, every = await _both(log, both)
    assert _where(narrowed) == _where(every) and len(every) == 5

    # An identity: what it sent (events, any partition) and what it received (its mailbox).
    who = selection_for(settings, IDENTITIES[2], [], [], [], None, None)
    narrowed, every = await _both(log, who)
    assert _where(narrowed) == _where(every)
    sent = [r for r in every if r["topic"] == "events"]
    received = [r for r in every if r["topic"] == "mailbox-entries"]
    assert len(sent) == 12 and len({r["partition"] for r in sent}) > 1
    assert len(received) >= 1 and len({r["partition"] for r in received}) == 1

    # Type alone reads everything, and finds the same either way.
    replies = selection_for(settings, None, [], [], ["Reply"], None, None)
    narrowed, every = await _both(log, replies)
    assert _where(narrowed) == _where(every) and len(every) == 60


async def test_a_bounded_read_keeps_to_its_offsets(log: dict[str, Any]) -> None:
    settings, names = log["settings"], log["names"]
    everything = Selection()
    whole = await collect(settings, everything, [names.events], False, None)
    tail = await collect(settings, everything, [names.events], False, None, Offsets(-3, None))
    ends = {
        p: max((r["offset"] for r in whole if r["partition"] == p), default=-1) + 1
        for p in range(PARTITIONS)
    }
    assert _where(tail) == _where([r for r in whole if r["offset"] >= ends[r["partition"]] - 3])
    window = await collect(settings, everything, [names.events], False, None, Offsets(2, 5))
    assert {r["offset"] for r in window} <= {2, 3, 4}
    assert len(window) == sum(max(0, min(end, 5) - 2) for end in ends.values())
