"""An agent gets every record of its partition once a stream has skipped some: the skipped
ones are read from the log (real Kafka), handed over in order, and acked to faust only
after the agent has processed each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.types import TP

from store.topics import TopicSpec, ensure_topics
from streams.faust_fixes import GroupPositions, gap_free
from tests.conftest import Infra, RunScope

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_topics")]


@dataclass
class _Event:
    message: Any
    key: bytes | None
    value: bytes | None


class _Stream:
    """What faust delivered: some offsets of the partition, not all."""

    def __init__(self, tp: TP, offsets: list[int]) -> None:
        self.tp, self.offsets = tp, offsets

    async def events(self) -> AsyncIterator[_Event]:
        for offset in self.offsets:
            message = SimpleNamespace(tp=self.tp, offset=offset)
            yield _Event(message, b"k", f"record {offset}".encode())


class _Consumer:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: Any) -> None:
        self.acked.append(message.offset)


async def test_skipped_records_are_read_from_the_log_and_acked_after_processing(
    infra: Infra, run_scope: RunScope
) -> None:
    topic = f"{run_scope.topic_prefix}gap-free"
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic, partitions=1)])
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for offset in range(12):
            await producer.send_and_wait(topic, f"record {offset}".encode(), key=b"k")
    finally:
        await producer.stop()
    tp = TP(topic, 0)
    group = f"{run_scope.topic_prefix}gap-free-group"
    await _commit(infra.kafka_bootstrap, group, TopicPartition(topic, 0), 2)
    # The group had committed 2; faust delivered 4, 5, 6, then 9 and 10.
    consumer = _Consumer()
    app: Any = SimpleNamespace(consumer=consumer)
    stream = _Stream(tp, [4, 5, 6, 9, 10])
    positions = GroupPositions(infra.kafka_bootstrap, group)

    processed: list[bytes | None] = []
    acked_when_processed: list[list[int]] = []
    try:
        async for _key, value in gap_free(app, positions, stream):
            acked_when_processed.append(list(consumer.acked))
            processed.append(value)
    finally:
        await positions.close()

    offsets = [int(v.split()[1]) for v in processed if v is not None]
    assert offsets == list(range(2, 11))
    # A read record is acked only once the agent asked for the next one.
    assert acked_when_processed[1] == [2] and acked_when_processed[2] == [2, 3]
    assert consumer.acked == [2, 3, 7, 8]  # faust acks the records it delivered itself


async def test_a_group_that_never_committed_resumes_at_the_start_of_the_log(
    infra: Infra, run_scope: RunScope
) -> None:
    topic = f"{run_scope.topic_prefix}gap-free-new"
    await ensure_topics(infra.kafka_bootstrap, [TopicSpec(topic, partitions=1)])
    positions = GroupPositions(infra.kafka_bootstrap, f"{run_scope.topic_prefix}nobody")
    try:
        assert await positions.of(TP(topic, 0)) == 0
    finally:
        await positions.close()


async def _commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """What a worker of the group did before: commit `offset` for the partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()
