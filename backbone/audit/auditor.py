"""`backbone auditor`: follows the log's source topics and signs what it saw.

For every partition of every source topic (BACKBONE_AUDIT_TOPICS) it reads each record
once, in offset order, as raw bytes (a plain aiokafka consumer with no group: it commits
nothing and never joins the workers), appends the record's leaf hash to the partition's
Merkle tree, and every BACKBONE_AUDIT_INTERVAL seconds, for each partition that grew:

1. writes the new leaf hashes (with their offsets) to `audit_leaves`,
2. signs a checkpoint (topic, partition, size, root, last offset, time) with its Ed25519
   key and appends it to `<prefix>audit-checkpoints` (awaiting the broker's ack),
3. stores the checkpoint in `audit_checkpoints`,
4. saves the tree's right edge and the next offset in `audit_state`.

A restart resumes from step 4's state; anything read after it is read again and hashes to
the same leaves (the log is append-only, and if it was not, that is what verify reports).
It never decrypts anything: a leaf is the ciphertext as it lies on the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cassandra.cluster import Cluster

from backbone.audit.checkpoints import Checkpoint, Signer, TreeHead
from backbone.audit.leaves import record_leaf
from backbone.audit.merkle import CompactTree
from backbone.audit.settings import AuditSettings
from backbone.audit.store import CHUNK, AuditStore, PartitionState, create_schema, pack_leaves
from backbone.connections import kafka_client_kwargs
from store.cassandra import connect
from store.retrying import until_done
from store.topics import TopicSpec, ensure_topics

log = logging.getLogger("backbone.audit")

# How often a running auditor looks for source partitions it does not follow yet.
LOOK_FOR_PARTITIONS_S = 10.0


class PartitionAudit:
    """One partition's tree, and its leaves not yet written to Cassandra."""

    def __init__(self, state: PartitionState, partial: list[tuple[int, bytes]]) -> None:
        self.state = state
        self.flushed = state.tree.size
        # Leaves of the last, partly filled row: it is written again whole when it grows.
        self.partial = partial
        self.pending: list[tuple[int, bytes]] = []

    def add(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        leaf = record_leaf(key, value)
        self.state.tree.append(leaf)
        self.pending.append((offset, leaf))
        self.state.last_offset = offset
        self.state.next_offset = offset + 1

    @property
    def grown(self) -> bool:
        return bool(self.pending)

    def rows(self) -> dict[int, bytes]:
        """The audit_leaves rows that changed: the partial row and any after it."""
        leaves = self.partial + self.pending
        first = self.flushed // CHUNK
        return {
            first + i: pack_leaves(leaves[i * CHUNK : (i + 1) * CHUNK])
            for i in range((len(leaves) + CHUNK - 1) // CHUNK)
        }

    def flushed_now(self) -> None:
        leaves = self.partial + self.pending
        self.flushed = self.state.tree.size
        in_last_row = self.flushed % CHUNK
        self.partial = leaves[len(leaves) - in_last_row :] if in_last_row else []
        self.pending = []


@dataclass
class AuditorStats:
    records: int = 0
    checkpoints: int = 0
    bytes: int = 0
    partitions: dict[tuple[str, int], int] = field(default_factory=dict)


class Auditor:
    def __init__(self, settings: AuditSettings, signer: Signer) -> None:
        self.settings = settings
        self.signer = signer
        self.stats = AuditorStats()
        self._audits: dict[TopicPartition, PartitionAudit] = {}
        self._cluster: Cluster | None = None
        self._store: AuditStore | None = None
        self._producer: AIOKafkaProducer | None = None

    async def _open(self) -> AIOKafkaConsumer:
        s = self.settings
        await ensure_topics(
            s.cluster.kafka_bootstrap,
            [TopicSpec(s.checkpoint_topic, 1, {"retention.ms": "-1"})],
            s.cluster.kafka_replication_factor,
            s.cluster.kafka_min_insync_replicas,
        )
        self._cluster, session = await asyncio.to_thread(connect, s.cluster)
        await asyncio.to_thread(create_schema, session, s.keyspace, s.cluster.cassandra_replication)
        self._store = await asyncio.to_thread(AuditStore, session)
        self._producer = AIOKafkaProducer(**kafka_client_kwargs(s.cluster), acks="all")
        await self._producer.start()
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(s.cluster),
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # never skip records if a position is lost
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # The auditor is in no hurry (it signs every few seconds), and a fetch costs
            # about the same for one record as for a thousand: let the broker gather up to
            # a second's records per fetch. Answering every record as it came cost 640 µs
            # of CPU per record at 200 records/s (bench.audit), ten times the hashing.
            fetch_min_bytes=1024 * 1024,
            fetch_max_wait_ms=1000,
        )
        await consumer.start()
        if not await self._follow_new_partitions(consumer):
            log.warning("no source topic exists yet: %s", ", ".join(s.topics))
        return consumer

    async def _follow_new_partitions(self, consumer: AIOKafkaConsumer) -> bool:
        """Starts auditing the source partitions that exist now and are not followed yet:
        all of them at the start, later a topic created or partitions added after the
        auditor started (a fresh deployment starts the auditor before the workers make
        their topics). True when there were any."""
        assert self._store is not None
        metadata = await consumer._client.fetch_all_metadata()
        found = [
            TopicPartition(topic, p)
            for topic in self.settings.topics
            for p in sorted(metadata.partitions_for_topic(topic) or ())
        ]
        new = [tp for tp in found if tp not in self._audits]
        if not new:
            return False
        starts = await consumer.beginning_offsets(new)
        for tp in new:
            state = await asyncio.to_thread(self._store.load_state, tp.topic, tp.partition)
            if state is None:
                state = PartitionState(tp.topic, tp.partition, CompactTree(), starts[tp], -1)
                partial: list[tuple[int, bytes]] = []
            else:
                number = state.tree.size // CHUNK
                partial = await asyncio.to_thread(
                    self._store.load_chunk, tp.topic, tp.partition, number
                )
                partial = partial[: state.tree.size % CHUNK]
            if starts[tp] > state.next_offset:
                # Retention removed records before the auditor read them: they are not in
                # any tree, and no one can say any more what they were.
                log.warning(
                    "records expired before the auditor read them",
                    extra={
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "from": state.next_offset,
                        "to": starts[tp] - 1,
                    },
                )
                state.next_offset = starts[tp]
            self._audits[tp] = PartitionAudit(state, partial)
        # A new assignment forgets the consumer's positions: every partition goes on from
        # the next offset its tree has not taken (records fetched and not yet taken are
        # fetched again).
        consumer.assign(list(self._audits))
        for tp, audit in self._audits.items():
            consumer.seek(tp, audit.state.next_offset)
        if len(new) < len(self._audits):
            log.info("auditing new partitions", extra={"partitions": len(new)})
        return True

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        with contextlib.suppress(Exception):
            await consumer.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)

    async def flush(self) -> int:
        """Writes and signs every partition that grew; returns how many checkpoints."""
        assert self._store is not None and self._producer is not None
        grown = [a for a in self._audits.values() if a.grown]

        async def checkpoint(audit: PartitionAudit) -> None:
            # Cassandra or Kafka being away delays a checkpoint, it must not end the
            # auditor: each step is idempotent (the same rows, the same signed head at a
            # later time), and the leaves stay pending until all of them are done.
            where = {"topic": audit.state.topic, "partition": audit.state.partition}
            await until_done(lambda: self._checkpoint(audit), "signing a checkpoint failed", where)

        await asyncio.gather(*(checkpoint(a) for a in grown))
        return len(grown)

    async def _checkpoint(self, audit: PartitionAudit) -> None:
        assert self._store is not None and self._producer is not None
        state = audit.state
        await asyncio.to_thread(self._store.save_chunks, state.topic, state.partition, audit.rows())
        head = TreeHead(
            topic=state.topic,
            partition=state.partition,
            size=state.tree.size,
            root=state.tree.root(),
            last_offset=state.last_offset,
            time_ms=int(time.time() * 1000),
        )
        checkpoint = self.signer.sign(head)
        await self.publish(checkpoint)
        await asyncio.to_thread(self._store.save_checkpoint, checkpoint)
        await asyncio.to_thread(self._store.save_state, state)
        audit.flushed_now()
        self.stats.checkpoints += 1

    async def publish(self, checkpoint: Checkpoint) -> None:
        assert self._producer is not None
        key = f"{checkpoint.head.topic}/{checkpoint.head.partition}".encode()
        await self._producer.send_and_wait(
            self.settings.checkpoint_topic, checkpoint.to_json().encode(), key=key
        )

    def _take(self, tp: TopicPartition, records: list[object]) -> None:
        audit = self._audits[tp]
        for r in records:
            key, value = r.key, r.value  # type: ignore[attr-defined]
            audit.add(r.offset, key, value)  # type: ignore[attr-defined]
            self.stats.bytes += len(key or b"") + len(value or b"")
        self.stats.records += len(records)

    async def run(self, stop: asyncio.Event | None = None, until_caught_up: bool = False) -> None:
        """Audits until `stop` is set, or (until_caught_up) until every partition reached
        the end offset it had at the start; signs what it has before returning."""
        stop = stop or asyncio.Event()
        consumer = await self._open()
        try:
            tps = list(self._audits)
            ends = await consumer.end_offsets(tps) if tps else {}
            log.info(
                "auditor started",
                extra={"partitions": len(tps), "key_id": self.signer.key_id},
            )
            next_flush = time.monotonic() + self.settings.interval_s
            next_look = time.monotonic() + LOOK_FOR_PARTITIONS_S
            while not stop.is_set():
                if until_caught_up and all(
                    self._audits[tp].state.next_offset >= ends[tp] for tp in tps
                ):
                    break
                if tps:
                    batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for tp, records in batch.items():
                        self._take(tp, records)
                else:
                    await asyncio.sleep(0.5)
                if time.monotonic() >= next_flush:
                    await self.flush()
                    next_flush = time.monotonic() + self.settings.interval_s
                if not until_caught_up and time.monotonic() >= next_look:
                    if await self._follow_new_partitions(consumer):
                        tps = list(self._audits)
                    next_look = time.monotonic() + LOOK_FOR_PARTITIONS_S
            await self.flush()
        finally:
            await self._close(consumer)


async def audit_once(settings: AuditSettings, signer: Signer) -> AuditorStats:
    """Reads every source partition to its current end, signs checkpoints, returns."""
    auditor = Auditor(settings, signer)
    await auditor.run(until_caught_up=True)
    return auditor.stats
