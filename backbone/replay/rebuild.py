"""Replaying the log into a fresh keyspace with the code the workers run.

What goes where, as in streams/app.py:
- `events`: each record opened with its data key and written by `Projection.apply`
  (Replies by `Projection.record_reply`, which keeps the idempotency keys);
- `mailbox-entries`: numbered by the workers' `Sequencer`, which gives the i-th new entry of
  an identity index i: the same record order gives the same indexes, so the mailbox comes
  back with the same per-identity indexes as long as the topic still holds every entry
  (its retention must be unlimited: see README, Operators);
- the data keys: from the workers' changelog (and the live `data_keys` table), a deleted
  key staying deleted (a shredded identity's events are skipped, as the workers would);
- `file_chunks`: copied from the live keyspace. File bytes are the one thing not on the
  log (ARCHITECTURE.md): the event pins their hash, the chunks are copied as they are.

Parallel: every partition is replayed by its own task, and several processes can share
the partitions (`--worker i --workers n`, partition p goes to worker p % n). Within a
partition, records are taken in batches; the projection answers each event with its
writes (no I/O), and a batch's writes go out together as unlogged batches
(backbone/replay/batching.py). Every write carries its event's version as its timestamp,
so the order they land in does not matter, within an aggregate or across.

Retention: a row the live side wrote with a TTL (messages, mailbox entries, idempotency
keys) gets the TTL left since its event's time, so it expires when the live row did; one
already past it is not written (streams/writes.py `remaining_ttl`).

Resumable: after each batch the partition's next offset is saved in `replay_progress` in
the target keyspace; a replay started again continues from there. Writes are idempotent
(projection rows carry the aggregate version as their timestamp, the sequencer skips
offsets it has written), so a batch applied twice after a crash writes the same rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from cassandra import OperationTimedOut
from cassandra.cluster import Cluster, Session

from backbone import idempotency
from backbone.audit.logread import log_bounds, partitions_of, read_partition
from backbone.connections import kafka_client_kwargs
from backbone.datakeys import unwrap_all, wrapped_data_keys
from backbone.replay.batching import BatchWriter
from backbone.security.logcrypto import DecryptionError, MasterKey
from backbone.settings import BackboneSettings
from schemas import codec
from store.cassandra import connect, execute
from store.envelopes import EnvelopeCodec, Opened
from store.retrying import until_done
from store.topics import TopicNames
from streams.deletion_erase import DeletedNamed
from streams.mailbox_sequencer import Entry, Sequencer
from streams.readmodels import Projection, create_schema
from streams.writes import Write, aware, remaining_ttl

log = logging.getLogger("backbone.replay")

PROGRESS_SCHEMA = """CREATE TABLE IF NOT EXISTS replay_progress (
    topic text, partition int, next_offset bigint, end_offset bigint, updated_at timestamp,
    PRIMARY KEY ((topic), partition))"""
# Events whose rows the projection writes with a TTL counted from the event's time (rather
# than from an expiry in the event, as tokens, templates and files are): "retention" is
# BACKBONE_RETENTION_DAYS (messages), a number is seconds (a Reply's idempotency key).
# Counted in the progress's `expired` when that TTL has run out (the projection then
# writes nothing for them).
_RELATIVE_TTL: dict[str, str] = {
    "MessageSent": "retention",
    "MessageReceived": "retention",
    "Reply": str(idempotency.WINDOW_S),
}

# Tables a replay does not rebuild from the log, and verify does not compare.
NOT_REBUILT = frozenset({"replay_progress"})


@dataclass
class Progress:
    """Counts for the progress bar; updated by every partition task."""

    total: int = 0
    done: int = 0
    skipped: int = 0  # records whose data key is gone (shredded) or that are not envelopes
    expired: int = 0  # events and mailbox rows the retention has removed from the live side
    erased: int = 0  # deleted identities whose peers' records named them (issue 22)
    started: float = field(default_factory=time.monotonic)
    by_partition: dict[tuple[str, int], int] = field(default_factory=dict)

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def line(self) -> str:
        rate = self.rate()
        left = max(self.total - self.done, 0)
        eta = left / rate if rate > 0 else float("inf")
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        eta_s = f"{eta:,.0f} s" if eta != float("inf") else "?"
        return (
            f"[{bar:<30}] {self.done:,}/{self.total:,} records  {rate:,.0f}/s  "
            f"ETA {eta_s}  skipped {self.skipped}  expired {self.expired}  "
            f"erased {self.erased}"
        )


@dataclass(frozen=True)
class ReplayOptions:
    target: str  # keyspace to build
    source: str  # live keyspace (data keys, file chunks)
    worker: int = 0
    workers: int = 1
    batch: int = 2000
    restart: bool = False  # ignore saved progress: from the beginning
    throttle_s: float = 0.0  # pause after each batch (tests: a replay slow enough to kill)
    follow: bool = False  # at the end, keep applying what is appended until stopped
    copy_files: bool = True  # copy every file chunk (a switch's catch-up copies what is missing)
    batch_writes: bool = True  # False: one request per statement, as the workers (bench.replay)


class Replayer:
    def __init__(self, settings: BackboneSettings, options: ReplayOptions) -> None:
        self.settings = settings
        self.options = options
        self.progress = Progress()
        self.names = TopicNames(settings.cluster.topic_prefix)
        self._clusters: list[Cluster] = []
        self._keys: dict[str, bytes] = {}
        self._absent: set[str] = set()
        self._named = DeletedNamed(set())  # issue 22: deleted identities records name
        self.writes: BatchWriter | None = None  # after `run`: its request counts
        self._key_lookup: tuple[Any, Any, Session, Session]

    async def _connect(self, keyspace: str | None) -> Session:
        cluster, session = await asyncio.to_thread(connect, self.settings.cluster, keyspace)
        self._clusters.append(cluster)
        return session

    async def close(self) -> None:
        for cluster in self._clusters:
            await asyncio.to_thread(cluster.shutdown)

    async def _data_keys(self, source: Session, target: Session) -> None:
        """The keys that still exist (backbone/datakeys.py), unwrapped for opening and
        written to the new keyspace's table; a shredded key stays gone."""
        wrapped = await wrapped_data_keys(self.settings, source)
        self._keys.update(unwrap_all(self.settings.master_key_b64, wrapped))
        insert = await asyncio.to_thread(
            target.prepare, "INSERT INTO data_keys (key_id, wrapped) VALUES (?, ?)"
        )
        writes = [execute(target, insert, (key_id, value)) for key_id, value in wrapped.items()]
        await asyncio.gather(*writes)

    async def _file_chunks(self, source: Session, target: Session) -> None:
        """File bytes are not on the log: copied as they are, with their remaining TTL."""
        insert = await asyncio.to_thread(
            target.prepare,
            "INSERT INTO file_chunks (file_id, chunk, data) VALUES (?, ?, ?) USING TTL ?",
        )
        rows = await execute(
            source, "SELECT file_id, chunk, data, TTL(data) AS ttl FROM file_chunks"
        )
        pending: list[Awaitable[Any]] = []
        for row in rows:
            pending.append(
                execute(target, insert, (row.file_id, row.chunk, row.data, row.ttl or 0))
            )
            if len(pending) >= 64:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)

    async def run(self, stop: asyncio.Event | None = None) -> Progress:
        """Replays to the end offsets seen at the start; with `follow`, then on until
        `stop` is set."""
        opts = self.options
        stop = stop or asyncio.Event()
        source = await self._connect(opts.source)
        target = await self._connect(None)
        for attempt in range(5):
            # Schema changes wait for agreement and time out on a busy node (seen at
            # 10 s); every statement is IF NOT EXISTS, so trying again is safe.
            try:
                await asyncio.to_thread(
                    create_schema, target, opts.target, self.settings.cluster.cassandra_replication
                )
                break
            except OperationTimedOut:
                if attempt == 4:
                    raise
                log.warning("creating the keyspace's tables timed out; trying again")
        await execute(target, PROGRESS_SCHEMA)
        await self._data_keys(source, target)  # every worker needs them to open records
        self._named = await DeletedNamed.load(source)
        if opts.worker == 0 and opts.copy_files:
            await self._file_chunks(source, target)
        self._key_lookup = (
            await asyncio.to_thread(
                source.prepare, "SELECT wrapped FROM data_keys WHERE key_id = ?"
            ),
            await asyncio.to_thread(
                target.prepare, "INSERT INTO data_keys (key_id, wrapped) VALUES (?, ?)"
            ),
            source,
            target,
        )
        envelopes = EnvelopeCodec(self.settings.master_key_b64, self._keys.__getitem__)
        # The projection's writes go out as unlogged batches, once per checkpoint.
        writer = self.writes = BatchWriter(target, enabled=opts.batch_writes)
        projection = await asyncio.to_thread(Projection, target, self.settings.retention_s)
        # The sequencer writes as it does in the workers, with its own batches: a head is
        # written only after its rows, which is what makes a killed replay resume without a
        # gap (a head sent with its rows in one flush could land alone).
        sequencer = await asyncio.to_thread(Sequencer, target, self.settings.retention_s)
        save = await asyncio.to_thread(
            target.prepare,
            "INSERT INTO replay_progress (topic, partition, next_offset, end_offset, updated_at)"
            " VALUES (?, ?, ?, ?, toTimestamp(now()))",
        )
        saved = {
            (r.topic, r.partition): r.next_offset
            for r in await execute(
                target, "SELECT topic, partition, next_offset FROM replay_progress"
            )
        }
        bootstrap = self.settings.cluster.kafka_bootstrap
        jobs: list[tuple[str, int, int, int]] = []
        for topic in (self.names.events, self.names.mailbox_entries):
            for p in await partitions_of(bootstrap, topic):
                if p % opts.workers != opts.worker:
                    continue
                start, end = await log_bounds(bootstrap, topic, p)
                first = start if opts.restart else max(start, saved.get((topic, p), start))
                jobs.append((topic, p, first, end))
                self.progress.total += max(end - first, 0)

        ends = {(topic, p): end for topic, p, _, end in jobs}
        grew = asyncio.Event()

        async def watch_ends() -> None:
            """Follow mode: one consumer asks for every partition's end offset twice a
            second and wakes the partitions' tasks when the log grew."""
            consumer = AIOKafkaConsumer(**kafka_client_kwargs(bootstrap), enable_auto_commit=False)
            await consumer.start()
            await asyncio.sleep(0)  # see read_partition: let its start-up task run
            try:
                tps = [TopicPartition(t, p) for t, p in ends]
                while not stop.is_set():
                    await asyncio.sleep(0.5)
                    for tp, end in (await consumer.end_offsets(tps)).items():
                        if end > ends[(tp.topic, tp.partition)]:
                            self.progress.total += end - ends[(tp.topic, tp.partition)]
                            ends[(tp.topic, tp.partition)] = end
                            grew.set()
            finally:
                await consumer.stop()

        async def one(topic: str, p: int, first: int, end: int) -> None:
            apply = (
                self._events_batch(envelopes, projection, writer)
                if topic == self.names.events
                else self._entries_batch(envelopes, sequencer)
            )
            batch: list[Any] = []

            async def flush(next_offset: int, end: int) -> None:
                await apply(batch)  # written before the checkpoint says so
                self.progress.done += len(batch)
                batch.clear()
                await execute(target, save, (topic, p, next_offset, end))
                if opts.throttle_s:
                    await asyncio.sleep(opts.throttle_s)

            while True:
                last = first - 1
                async for r in read_partition(bootstrap, topic, p, first, end):
                    batch.append(r)
                    last = r.offset
                    if len(batch) >= opts.batch:
                        await flush(last + 1, end)
                await flush(last + 1 if last >= first else end, end)
                first = end
                while opts.follow and not stop.is_set() and ends[(topic, p)] <= first:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(grew.wait(), 1.0)
                    await asyncio.sleep(0.05)  # let every waiting partition see it
                    grew.clear()
                if not opts.follow or stop.is_set():
                    return
                end = ends[(topic, p)]

        self.progress.started = time.monotonic()  # the rate is of replaying, not setting up
        watcher = asyncio.create_task(watch_ends()) if opts.follow else None
        try:
            await asyncio.gather(*(one(*job) for job in jobs))
        finally:
            stop.set()
            if watcher is not None:
                await watcher
        # Issue 22: a deleted identity's own records did not open, but its peers' named it.
        self.progress.erased = await self._named.erase(target)
        return self.progress

    async def _open(self, envelopes: EnvelopeCodec, raw: bytes | None) -> Opened | None:
        if raw is None:
            return None
        try:
            opened = envelopes.open(raw)
            self._named.note(opened.body)
            return opened
        except KeyError as missing:
            # A key made after the replay read the keys (a new identity while following,
            # or while the end offsets were being read): the workers store a key in
            # Cassandra before any record sealed with it goes out, so it is there now.
            key_id = str(missing.args[0]) if missing.args else ""
            if key_id and await self._load_key(key_id):
                return await self._open(envelopes, raw)
        except (DecryptionError, codec.SchemaError):
            pass
        # A shredded identity's record (its key is gone) or not an envelope: the workers
        # skip it too.
        self.progress.skipped += 1
        return None

    async def _load_key(self, key_id: str) -> bool:
        if key_id in self._absent:
            return False
        select, insert, source, target = self._key_lookup
        row = (await execute(source, select, (key_id,))).one()
        if row is None:
            self._absent.add(key_id)  # shredded, or never made: asking again will not help
            return False
        master = MasterKey.from_base64(self.settings.master_key_b64)
        self._keys[key_id] = master.unwrap(base64.b64decode(row.wrapped), key_id)
        await execute(target, insert, (key_id, row.wrapped))
        return True

    def _events_batch(
        self, envelopes: EnvelopeCodec, projection: Projection, writer: BatchWriter
    ) -> Callable[[list[Any]], Awaitable[None]]:
        async def apply(records: list[Any]) -> None:
            now = datetime.now(UTC)
            writes: list[Write] = []
            for r in records:
                event = await self._open(envelopes, r.value)
                if event is None or self._expired(event, now):
                    continue
                if event.name == "Reply":
                    writes += projection.reply_writes(event, now)
                else:
                    writes += projection.writes(event, now) or ()
            await writer.write(writes)

        return apply

    def _entries_batch(
        self, envelopes: EnvelopeCodec, sequencer: Sequencer
    ) -> Callable[[list[Any]], Awaitable[None]]:
        async def apply(records: list[Any]) -> None:
            entries = []
            for r in records:
                opened = await self._open(envelopes, r.value)
                if opened is None:
                    continue
                b = opened.body
                entries.append(
                    Entry(
                        r.offset,
                        b["recipient"],
                        b["event_type"],
                        b["payload_json"],
                        b["source_event_id"],
                        b["occurred_at"],
                    )
                )
            if not entries:
                return
            # As the workers' sequencer loop does: a failed batch is sequenced again
            # whole (the sequencer re-reads its heads and skips what it wrote). Entries
            # past the retention take their index but get no row (streams/mailbox_sequencer.py),
            # as their rows are gone on the live side.
            await until_done(lambda: sequencer.sequence(entries), "sequencing failed")
            cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.retention_s)
            self.progress.expired += sum(aware(e.occurred_at) <= cutoff for e in entries)

        return apply

    def _expired(self, event: Opened, now: datetime) -> bool:
        """True (and counted) for an event whose rows the live keyspace no longer has: their
        TTL, counted from the event's time, has run out, and the projection writes nothing
        for it."""
        ttl = _RELATIVE_TTL.get(event.name)
        if ttl is None:
            return False
        seconds = self.settings.retention_s if ttl == "retention" else int(ttl)
        if remaining_ttl(seconds, event.envelope["occurred_at"], now) > 0:
            return False
        self.progress.expired += 1
        return True
