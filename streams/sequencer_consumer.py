"""The loop that feeds `mailbox-entries` to the sequencer, with a plain aiokafka consumer.

Why not a faust agent like the others: the sequencer must commit a record's offset only
after its row is written. faust's `take`/`take_events` ack records as they are buffered
(a SIGKILL then lost entries: offsets were committed for rows never written); a faust
stream with manual acks (`noack_take`) left one partition stalled for good after a
take-over; and a faust stream one record at a time was too slow (two Cassandra writes per
entry). Here the rule is plain: fetch a batch, write it, then commit exactly its offsets.

The consumer group is its own (`<app id>-mailbox-sequencer`), so its rebalances do not
wait for faust's and the other way round. On every rebalance the sequencer's cached heads
are dropped: a partition that comes back may have been moved on by another worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from backbone.connections import kafka_client_kwargs
from store.retrying import until_done
from streams.mailbox_sequencer import Announce, Entry, Sequenced, Sequencer

log = logging.getLogger("backbone.streams.sequencer")

# Records per fetch: large enough to batch Cassandra writes per identity, small enough to
# keep the notice latency of a busy partition low.
MAX_RECORDS = 2000

Decode = Callable[[int, bytes], Awaitable[Entry | None]]


class _ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sequencer: Sequencer) -> None:
        self.sequencer = sequencer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.sequencer.forget()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.sequencer.forget()
        if assigned:
            log.info("sequencer partitions assigned", extra={"partitions": len(assigned)})


class SequencerConsumer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        sequencer: Sequencer,
        decode: Decode,
        notify: Announce,
        session_timeout_s: float,
    ) -> None:
        self.topic = topic
        self.sequencer = sequencer
        self.decode = decode
        self.notify = notify
        self._committing: asyncio.Task[None] | None = None
        self.consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(bootstrap),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_RECORDS,
            session_timeout_ms=int(session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(1.0, session_timeout_s / 10) * 1000),
            # fetch_max_wait_ms at its default: see api/bus.py
        )

    async def run(self) -> None:
        """Sequences until cancelled."""
        self.consumer.subscribe([self.topic], listener=_ForgetOnRebalance(self.sequencer))
        await self.consumer.start()
        try:
            while True:
                try:
                    batch = await self.consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
                except KafkaError as exc:
                    log.warning("fetching mailbox entries failed: %s", type(exc).__name__)
                    await asyncio.sleep(1)
                    continue
                if batch:
                    await self._handle(batch)
        finally:
            if self._committing is not None:
                await asyncio.gather(self._committing, return_exceptions=True)
            await self.consumer.stop()

    async def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        entries: list[Entry] = []
        for records in batch.values():
            for record in records:
                entry = await self.decode(record.offset, record.value)
                if entry is not None:
                    entries.append(entry)
        # Partitions never share an identity, so one call writes them all concurrently.
        await until_done(
            lambda: self.sequencer.sequence(entries, self._announce), "sequencing failed"
        )
        offsets = {
            tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()
        }
        # The commit runs while the next batch is fetched and written: only its order
        # matters (one in flight at a time), and its loss only means records skipped again.
        if self._committing is not None:
            await self._committing
        self._committing = asyncio.create_task(self._commit(offsets))

    async def _announce(self, done: Sequenced) -> None:
        try:
            await self.notify(done)
        except Exception as exc:  # a stream then waits for the next notice or its timeout
            log.warning("a mailbox notice was not sent: %s", type(exc).__name__)

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved while we wrote: the new owner gets these records again
            # and skips them by their offsets in Cassandra. Nothing is lost or doubled.
            log.warning("committing sequenced offsets failed: %s", type(exc).__name__)
