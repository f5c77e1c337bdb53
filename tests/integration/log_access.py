"""Test-side access to the raw log: every record of a topic, and the codec an operator with
the master key would use (data keys unwrapped from the workers' key table)."""

from __future__ import annotations

import base64
import json

from aiokafka import AIOKafkaConsumer, TopicPartition

from backbone.security.logcrypto import MasterKey
from streams.envelopes import EnvelopeCodec
from tests.integration.stack import Stack


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[tuple[bytes, bytes]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def operator_codec(stack: Stack) -> EnvelopeCodec:
    """Opens any record whose data key exists now (what a replay tool holds)."""
    master = MasterKey.from_base64(stack.master_key_b64)
    topic = f"{stack.cluster.topic_prefix}workers-data-keys-changelog"
    wrapped = {
        json.loads(k): json.loads(v)
        for k, v in await read_topic(stack.cluster.kafka_bootstrap, topic)
        if v is not None
    }
    keys = {kid: master.unwrap(base64.b64decode(w), kid) for kid, w in wrapped.items()}
    return EnvelopeCodec(stack.master_key_b64, lambda kid: keys[kid])
