"""Reading partitions of the log as raw records with their offsets, without a consumer
group (nothing is committed; an operator's tool never moves the workers' positions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from backbone.connections import kafka_client_kwargs


@dataclass(frozen=True)
class RawRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    consumer = AIOKafkaConsumer(**kafka_client_kwargs(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        return sorted(cluster.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


async def log_bounds(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    """(log start offset, end offset) of one partition."""
    consumer = AIOKafkaConsumer(**kafka_client_kwargs(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        return start, end
    finally:
        await consumer.stop()


async def read_partition(
    bootstrap: str, topic: str, partition: int, first: int | None = None, end: int | None = None
) -> AsyncIterator[RawRecord]:
    """The records of one partition from `first` (default: the log start) up to `end`
    (default: the end offset when reading starts), in offset order."""
    if first is not None and end is not None and first >= end:
        return  # nothing to read: no consumer
    consumer = AIOKafkaConsumer(
        **kafka_client_kwargs(bootstrap),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Large fetches: these tools read whole partitions, not the latest record.
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    # aiokafka's group-less consumer starts a task at start() that stop() awaits after
    # cancelling it; cancelled before it ever ran, it raises CancelledError out of stop().
    # One turn of the loop lets it start.
    await asyncio.sleep(0)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        stop = (await consumer.end_offsets([tp]))[tp] if end is None else end
        if first is None:
            # An explicit offset: seek_to_beginning right after assign() was seen to lose
            # against the consumer's own reset to "latest" and read nothing.
            first = (await consumer.beginning_offsets([tp]))[tp]
        consumer.seek(tp, first)
        while await consumer.position(tp) < stop:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            for r in batch.get(tp, ()):
                if r.offset >= stop:
                    return
                yield RawRecord(partition, r.offset, r.key, r.value, r.timestamp)
    finally:
        await consumer.stop()


async def read_at(bootstrap: str, topic: str, partition: int, offset: int) -> RawRecord | None:
    async for record in read_partition(bootstrap, topic, partition, offset, offset + 1):
        return record
    return None


def key_partition(key: bytes, partitions: list[int]) -> int:
    """The partition a keyed record was written to: the producers' own partitioner (aiokafka's
    default, murmur2 as in the Java client; faust's `topic.send` uses the same one), so a
    tool that knows a key reads one partition instead of all. Holds as long as the topic's
    partition count has not changed since the record was written."""
    ordered = sorted(partitions)
    return int(DefaultPartitioner()(key, ordered, ordered))
