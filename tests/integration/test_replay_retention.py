"""A replay brings back nothing the live keyspace's TTLs already removed: a message older
than the retention, its mailbox row (whose index stays taken), and an idempotency key older
than its window are not written; newer ones are, with the TTL left since their event."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone import idempotency
from backbone.replay.rebuild import Replayer, ReplayOptions
from backbone.security.logcrypto import MasterKey, new_data_key
from backbone.settings import BackboneSettings, ClusterSettings
from schemas import codec
from store.cassandra import connect
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames, ensure_topics
from streams.readmodels import create_schema

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_topics")]

NOW = datetime.now(UTC)
RETENTION_DAYS = 30


def _aged(raw: bytes, at: datetime) -> bytes:
    """The same record with another occurred_at (not part of the sealed body's AAD)."""
    _, envelope = codec.decode(raw)
    return codec.encode("Envelope", {**envelope, "occurred_at": at})


async def test_replay_leaves_out_what_the_retention_removed(
    cluster_settings: ClusterSettings, cassandra_session: Any
) -> None:
    # A live keyspace and topics of its own: the run's keyspace holds the test stack's data
    # keys, sealed with another master key.
    prefix = f"{cluster_settings.topic_prefix}ret."
    cluster = ClusterSettings(
        cluster_settings.kafka_bootstrap,
        cluster_settings.cassandra_contact_points,
        cluster_settings.cassandra_port,
        f"{cluster_settings.keyspace}_retlive",
        prefix,
    )
    master_b64 = base64.b64encode(os.urandom(32)).decode()
    settings = BackboneSettings(
        cluster,
        master_b64,
        master_b64,
        partitions=1,
        app_id=f"{prefix}workers",
        retention_days=RETENTION_DAYS,
    )
    names = TopicNames(prefix)
    wanted = (names.events, names.mailbox_entries)
    await ensure_topics(cluster.kafka_bootstrap, [s for s in names.specs(1) if s.name in wanted])
    live_cluster, live = connect(cluster)
    create_schema(live, cluster.keyspace)
    keys = {"dk-r": new_data_key()}
    wrapped = base64.b64encode(MasterKey.from_base64(master_b64).wrap(keys["dk-r"], "dk-r"))
    live.execute(
        "INSERT INTO data_keys (key_id, wrapped) VALUES (%s, %s)", ("dk-r", wrapped.decode())
    )
    live_cluster.shutdown()
    envelopes = EnvelopeCodec(master_b64, lambda k: keys[k])
    recipient = "did:e:x:dids:retained"
    old, new = NOW - timedelta(days=RETENTION_DAYS + 5), NOW - timedelta(days=1)

    def sent(mid: str, at: datetime) -> bytes:
        body = {
            "message_id": mid,
            "sender": "did:e:x:dids:s",
            "sender_device": "DVC",
            "body": b"c",
            "attachments": [],
            "recipients": [{"address": recipient, "encrypted_key": b"k"}],
            "created_at": at,
        }
        raw = envelopes.seal(
            "MessageSent",
            body,
            aggregate_key=mid,
            correlation_id="c",
            data_key_id="dk-r",
            aggregate_version=1,
        )
        return _aged(raw, at)

    def entry(mid: str, at: datetime) -> bytes:
        body = {
            "recipient": recipient,
            "event_type": "MessageReceived",
            "payload_json": json.dumps({"messageId": mid}),
            "source_event_id": mid,
            "occurred_at": at,
        }
        raw = envelopes.seal(
            "MailboxEntry", body, aggregate_key="r", correlation_id="c", data_key_id="dk-r"
        )
        return _aged(raw, at)

    def reply(key: str, at: datetime) -> bytes:
        correlation = f"{idempotency.PREFIX}{key}-fp"
        body = {
            "correlation_id": correlation,
            "ok": True,
            "status": 201,
            "error_code": None,
            "error_message": None,
            "resource_json": None,
        }
        raw = envelopes.seal("Reply", body, aggregate_key=key, correlation_id=correlation)
        return _aged(raw, at)

    producer = AIOKafkaProducer(bootstrap_servers=cluster.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for raw in (
            sent("MSGold", old),
            sent("MSGnew", new),
            reply("old", NOW - timedelta(days=2)),
            reply("new", NOW - timedelta(hours=1)),
        ):
            await producer.send_and_wait(names.events, raw, key=b"k")
        for raw in (entry("MSGold", old), entry("MSGnew", new)):
            await producer.send_and_wait(names.mailbox_entries, raw, key=b"r")
    finally:
        await producer.stop()

    target = f"{cluster.keyspace}_ret"
    try:
        replayer = Replayer(settings, ReplayOptions(target=target, source=cluster.keyspace))
        try:
            progress = await replayer.run()
        finally:
            await replayer.close()
        assert (progress.done, progress.skipped, progress.expired) == (6, 0, 3)
        rebuilt_cluster, rebuilt = connect(cluster, target)
        try:
            q = rebuilt.execute
            assert [r.id for r in q("SELECT id FROM messages")] == ["MSGnew"]
            rows = q("SELECT idx, source_event_id FROM mailbox WHERE address = %s", (recipient,))
            assert [(r.idx, r.source_event_id) for r in rows] == [(2, "MSGnew")]  # 1 stays taken
            head = q("SELECT next_idx FROM mailbox_heads WHERE address = %s", (recipient,)).one()
            assert head.next_idx == 3
            assert [r.key_id for r in q("SELECT key_id FROM idempotency_keys")] == ["new"]
            # What it brings back expires when the live rows did: the retention counted
            # from the event's time (a day ago), not from the replay.
            day = 24 * 3600
            message_ttl = q("SELECT TTL(body) AS t FROM messages WHERE id = 'MSGnew'").one().t
            entry_ttl = (
                q(
                    "SELECT TTL(payload) AS t FROM mailbox WHERE address = %s AND idx = 2",
                    (recipient,),
                )
                .one()
                .t
            )
            for ttl in (message_ttl, entry_ttl):
                assert (RETENTION_DAYS - 1) * day - 600 < ttl <= (RETENTION_DAYS - 1) * day
        finally:
            rebuilt_cluster.shutdown()
    finally:
        for keyspace in (target, cluster.keyspace):
            cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
