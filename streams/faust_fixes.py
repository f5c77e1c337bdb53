"""Every record of an agent's partitions processed at least once, whatever faust's stream
delivers.

faust's rebalance recovery can let a stream jump over records. It resumes fetching the
stream partitions, then seeks them to their committed offsets while the first records are
already in flight, and some records in that window never reach the agent. The kill test
caught it: on the worker that took over, the projector processed events 59 to 63, the seek
landed, then 66 came, and 64 and 65 never did. Event 65 was a `MessageSent` and 66 its
reply: the sender got 201 and the message never reached the recipient's mailbox.

Moving faust's seek before the resume made it worse (its "pause" only drops fetched
records, so the position ran on while paused), so the correction is at our layer: our
source topics are neither compacted nor transactional, so a partition's offsets follow
each other. `SkipWatch` knows the offset each record must have: for an actor's first
record of a partition, where the group resumes it (its committed offset, asked of Kafka;
faust also starts a partition past it when the fetch ran on during its pause), then the
one after the last. When a stream jumps forward, `gap_free` reads the skipped records from
the log itself, hands them to the agent first, and acks them to faust once processed, so
that its commits move on over them. Going back (records again after a seek) is harmless:
every agent is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP
from faust.types.tuples import Message
from prometheus_client import Counter

from backbone.connections import kafka_client_kwargs
from store.retrying import until_done
from store.topics import read_range
from streams.metrics import SKIPPED_RECORDS

IDLE_GAPS = Counter(
    "backbone_stream_idle_gaps_total",
    "Records found missing on an idle partition (its end offset past the stream's position)"
    " and read from the log (streams/faust_fixes.py)",
    ["topic"],
)
# How long a projector partition may be idle before its end offset is checked.
IDLE_CHECK_S = 3.0

log = logging.getLogger("backbone.streams")

Record = tuple[bytes | None, bytes | None]  # key, value


class SkipWatch:
    """The offsets a stream jumped over, per partition of one actor."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}

    def follows(self, tp: TP) -> bool:
        return tp in self._next

    def begin(self, tp: TP, offset: int) -> None:
        """Where the partition's records must start (where the group resumes it)."""
        self._next[tp] = offset

    def saw(self, tp: TP, offset: int) -> tuple[int, int] | None:
        """Note a delivered record; returns the first and last offset skipped before it."""
        expected = self._next.get(tp)
        self._next[tp] = offset + 1
        if expected is None or offset <= expected:
            return None
        SKIPPED_RECORDS.labels(tp.topic).inc(offset - expected)
        log.warning(
            "records skipped by the stream; reading them from the log",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "first_offset": expected,
                "last_offset": offset - 1,
            },
        )
        return expected, offset - 1

    def missing_at_end(self, tp: TP, end_offset: int) -> tuple[int, int] | None:
        """On an idle partition: the offsets before `end_offset` (the log's end) that the
        stream has not delivered, or None. A record the stream jumped over is otherwise
        noticed only when a later one arrives; a 202's event has no reply behind it, so on
        a quiet partition nothing would come to reveal it."""
        expected = self._next.get(tp)
        if expected is None or end_offset <= expected:
            return None
        self._next[tp] = end_offset
        return expected, end_offset - 1

    def partitions(self) -> list[TP]:
        return list(self._next)


class GroupPositions:
    """Where a consumer group resumes a partition: its committed offset, else the first
    offset on the log (our groups read from the earliest). Asked through the admin API, so
    that asking never touches the group's membership."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        self._starting = asyncio.Lock()

    async def of(self, tp: TP) -> int:
        admin, consumer = await self._started()
        ktp = TopicPartition(tp.topic, tp.partition)
        offsets = await admin.list_consumer_group_offsets(self.group_id, partitions=[ktp])
        committed = offsets[ktp].offset if ktp in offsets else -1
        if committed >= 0:
            return committed
        return int((await consumer.beginning_offsets([ktp]))[ktp])

    async def end(self, tp: TP) -> int:
        """The partition's end offset (the offset its next record will get)."""
        _, consumer = await self._started()
        ktp = TopicPartition(tp.topic, tp.partition)
        return int((await consumer.end_offsets([ktp]))[ktp])

    async def _started(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._starting:
            if self._clients is None:
                admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.bootstrap))
                await admin.start()
                consumer = AIOKafkaConsumer(**kafka_client_kwargs(self.bootstrap))
                await consumer.start()
                self._clients = (admin, consumer)
            return self._clients

    async def close(self) -> None:
        if self._clients is not None:
            admin, consumer = self._clients
            self._clients = None
            await consumer.stop()
            await admin.close()


class GapFree:
    """An actor's records (key, value), with any record its stream skipped read from the
    log and handed over first, in offset order: one at a time (`async for`), acked by
    faust as the agent asks for the next, or in batches (`batches`)."""

    def __init__(self, app: faust.App, positions: GroupPositions, stream: Any) -> None:
        self.app = app
        self.positions = positions
        self.stream = stream
        self._watch = SkipWatch()
        self._pending: asyncio.Future[Any] | None = None  # the stream's next record

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._records()

    async def _records(self) -> AsyncIterator[Record]:
        async for event in self.stream.events():
            for record in await self._skipped_before(event):
                yield record.key, record.value
                # Back here once the agent has processed it (it asked for the next one).
                self.app.consumer.ack(_message(event.message.tp, record))
            yield event.key, event.value

    async def batches(
        self, max_records: int, idle_check_s: float = IDLE_CHECK_S
    ) -> AsyncIterator[list[Record]]:
        """What the stream has ready, up to `max_records` at a time, without waiting for
        more: a lone record goes at once, a burst goes together. A batch's records are
        acked to faust only when the agent asks for the next batch, that is after it has
        processed all of them (faust's own acks are switched off for the stream: it would
        ack each record as the next one is taken, before the batch is written).

        When no record has come for `idle_check_s`, each partition's end offset is
        compared with the position: records the stream jumped over and that no later
        record has revealed are read from the log and handed over as a batch."""
        self.stream.enable_acks = False
        stream = self.stream.events().__aiter__()
        try:
            async for records in self._batches(stream, max_records, idle_check_s):
                yield records
        finally:
            if self._pending is not None:
                self._pending.cancel()  # the agent stopped: nothing reads the stream on

    async def _batches(
        self, stream: Any, max_records: int, idle_check_s: float
    ) -> AsyncIterator[list[Record]]:
        batch: list[Record] = []
        events: list[Any] = []
        skipped: list[Message] = []
        while True:
            pending = self._pending
            if pending is None:
                pending = self._pending = asyncio.ensure_future(stream.__anext__())
            try:
                done, _ = await asyncio.wait({pending}, timeout=None if batch else idle_check_s)
            except asyncio.CancelledError:
                # faust stops the actor of a revoked partition by ending its stream (a
                # StopAsyncIteration thrown into the channel) and then cancelling the actor;
                # the read runs in a task of its own, so the cancel can arrive before it has
                # woken us. An ended stream is the actor's normal end: a cancel that escaped
                # would count as a crash, and a rebalance crashes one actor per partition at
                # once, past faust's restart limit, which then stops the whole worker.
                if _ended(pending):
                    self._pending = None
                    return
                raise
            if not done:
                # Idle: the pending read stays pending while the log is checked.
                for tp, records in await self._missing_at_end():
                    IDLE_GAPS.labels(tp.topic).inc(len(records))
                    yield [(r.key, r.value) for r in records]
                    for record in records:
                        self.app.consumer.ack(_message(tp, record))
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                self._pending = None
            for record in await self._skipped_before(event):
                batch.append((record.key, record.value))
                skipped.append(_message(event.message.tp, record))
            batch.append((event.key, event.value))
            events.append(event)
            if len(batch) < max_records and _more_ready(self.stream):
                continue
            yield batch
            for message in skipped:
                self.app.consumer.ack(message)
            for acked in events:
                await self.stream.ack(acked)
            batch, events, skipped = [], [], []

    async def _missing_at_end(self) -> list[tuple[TP, list[Any]]]:
        found: list[tuple[TP, list[Any]]] = []
        for tp in getattr(self.stream, "active_partitions", None) or ():
            if not self._watch.follows(tp):  # no record yet: it starts where the group resumes
                try:
                    self._watch.begin(tp, await self.positions.of(tp))
                except Exception as exc:  # Kafka away: the next idle check asks again
                    log.warning("asking a position failed", extra={"error": type(exc).__name__})
        for tp in self._watch.partitions():
            try:
                end = await self.positions.end(tp)
            except Exception as exc:  # Kafka away: the next idle check asks again
                log.warning("asking an end offset failed", extra={"error": type(exc).__name__})
                continue
            missing = self._watch.missing_at_end(tp, end)
            if missing is None:
                continue
            first, last = missing
            log.warning(
                "records missing on an idle partition; reading them from the log",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "first_offset": first,
                    "last_offset": last,
                },
            )
            records = await until_done(
                partial(read_range, self.positions.bootstrap, tp.topic, tp.partition, first, last),
                "reading missing records failed",
            )
            found.append((tp, records))
        return found

    async def _skipped_before(self, event: Any) -> list[Any]:
        """The records the stream jumped over before `event`, read from the log."""
        tp, offset = event.message.tp, event.message.offset
        positions = self.positions
        if not self._watch.follows(tp):
            self._watch.begin(
                tp, await until_done(partial(positions.of, tp), "asking a group position failed")
            )
        skipped = self._watch.saw(tp, offset)
        if skipped is None:
            return []
        first, last = skipped
        found: list[Any] = await until_done(
            partial(read_range, positions.bootstrap, tp.topic, tp.partition, first, last),
            "reading skipped records failed",
        )
        if len(found) != last - first + 1:  # expired from the log: nothing to be done
            log.error(
                "skipped records no longer on the log",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "missing": last - first + 1 - len(found),
                },
            )
        return found


def _more_ready(stream: Any) -> bool:
    """True when the stream's channel holds another record already fetched."""
    queue = getattr(stream.channel, "queue", None)
    return queue is not None and not queue.empty()


def gap_free(app: faust.App, positions: GroupPositions, stream: Any) -> GapFree:
    """An actor's records with any record its stream skipped read from the log (GapFree)."""
    return GapFree(app, positions, stream)


def _message(tp: TP, record: Any) -> Message:
    return Message(
        tp.topic,
        tp.partition,
        record.offset,
        record.timestamp / 1000.0,
        record.timestamp_type,
        None,
        record.key,
        record.value,
        None,
        tp=tp,
    )


def _ended(read: asyncio.Future[Any]) -> bool:
    """Whether a pending read of a faust stream found the stream ended."""
    return read.done() and not read.cancelled() and isinstance(read.exception(), StopAsyncIteration)
