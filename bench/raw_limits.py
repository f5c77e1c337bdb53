"""The raw limit of this machine, measured in the same run as the backbone.

Three figures, with the bare client libraries the backbone itself uses and records and
rows of the backbone's sizes (`bench/records.py`), but none of its logic:

- *Kafka*: aiokafka produces N records (acks=all and idempotence, like the backbone's
  producers; linger 5 ms and 64 KiB batches, i.e. sensibly batched) to a scratch topic with
  as many partitions as the backbone's topics, keyed over 1000 identity-like keys, while a
  consumer reads them: produce rate (all acked) and produce→consume rate (all consumed).
  Then the latency of single records produced at a low paced rate with linger 1 ms (as
  the API's producer): produce start → consumed.
- *Cassandra*: cassandra-driver inserts N `mailbox` rows (the sequencer's schema, the
  payload a 1 KiB message's JSON) with a prepared statement and `execute_concurrent`
  (the driver's own fastest path); then one client reads them back in pages of up to
  1000 rows per identity as the API's mailbox read does.
- *One identity's batches*: rows of one partition in sequential 23-row unlogged batches,
  the sequencer's write pattern for one identity with a backlog, with the driver's default
  sockets (as the backbone connects) and with TCP_NODELAY.
- *Pipeline*: produce → consume → insert: records are produced, a consumer fetches
  batches (up to 2000, like the sequencer), decodes each record and inserts its row, all
  rows of a batch concurrently, before the next fetch. Records/s from the first send to
  the last row written. This is what the backbone's end-to-end figure is compared with.

Everything lives in scratch space that is removed at the end: the topic
`bench_raw.<run>`, the keyspace `bench_raw`. Nothing is written into the backbone's own
topics or keyspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cassandra import ProtocolVersion
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType

from backbone.connections import cassandra_cluster_kwargs, kafka_client_kwargs
from backbone.settings import ClusterSettings
from bench.progress import Progress
from bench.records import fake_address, message_payload, raw_record, sealed_entry_size
from bench.stats import LatencySummary, rate, summarize_ms
from store.cassandra import connect
from streams.mailbox_sequencer import SCHEMA

KEYSPACE = "bench_raw"
IDENTITIES = 1000  # distinct record keys on Kafka
READ_IDENTITIES = 64  # Cassandra partitions; few, so a read is a page of many rows
FETCH_RECORDS = 2000  # the sequencer's max_poll_records
# Rows per batch the sequencer writes for one identity: MAX_BATCH_BYTES (40 KiB) over
# rows of a 1 KiB message's entry (~1.7 KiB payload + ~200 B of the rest).
SEQUENCER_BATCH_ROWS = 23
TTL_S = 365 * 24 * 3600  # the backbone's default retention, as the sequencer writes it
VALUE_POOL = 64  # distinct record values cycled (making 100k payloads would cost more)


class KafkaFigures(TypedDict, total=False):
    records: int
    record_bytes: int
    produce_per_s: float
    produce_consume_per_s: float
    mib_per_s: float
    latency: LatencySummary
    latency_rate_per_s: float


class CassandraFigures(TypedDict):
    rows: int
    concurrency: int
    inserts_per_s: float
    read_rows_per_s: float
    row_payload_bytes: int


class BatchFigures(TypedDict):
    rows: int
    rows_per_batch: int
    rows_per_s: float
    batch_median_ms: float
    rows_per_s_nodelay: float
    batch_median_ms_nodelay: float


class PipelineFigures(TypedDict):
    records: int
    records_per_s: float
    seconds: float


@dataclass(frozen=True)
class RawConfig:
    kafka_records: int
    cassandra_rows: int
    pipeline_records: int
    latency_records: int = 500
    latency_rate: float = 200.0
    concurrency: int = 128
    batch_rows: int = 2000


def _key(i: int) -> bytes:
    # Like the backbone's record keys: 32 hex characters of a keyed hash.
    return hashlib.sha256(f"bench-{i % IDENTITIES}".encode()).hexdigest()[:32].encode()


class ScratchTopic:
    """A topic `bench_raw.<run>` with the backbone's partition count, deleted on exit."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.name = f"bench_raw.{uuid.uuid4().hex[:8]}"

    async def __aenter__(self) -> ScratchTopic:
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.bootstrap))
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.name, self.partitions, 1)])
            await self._wait_for_leaders(admin)
        finally:
            await admin.close()
        return self

    async def _wait_for_leaders(self, admin: AIOKafkaAdminClient) -> None:
        # A producer that starts before every partition has a leader logs
        # NotLeaderForPartitionError (and retries): the first line a newcomer saw.
        deadline = asyncio.get_running_loop().time() + 15
        while asyncio.get_running_loop().time() < deadline:
            described = await admin.describe_topics([self.name])
            partitions = described[0].get("partitions", []) if described else []
            led = [p for p in partitions if p.get("leader", -1) >= 0]
            if len(led) == self.partitions:
                return
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.bootstrap))
        await admin.start()
        try:
            await admin.delete_topics([self.name])
        finally:
            await admin.close()

    async def consumer_at_end(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self.bootstrap),
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            max_partition_fetch_bytes=4 << 20,
        )
        await consumer.start()
        tps = [TopicPartition(self.name, p) for p in range(self.partitions)]
        for _ in range(50):  # a new topic's metadata may take a moment to reach the client
            await consumer._client.force_metadata_update()
            if consumer._client.cluster.partitions_for_topic(self.name):
                break
            await asyncio.sleep(0.1)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        return consumer


def _producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_client_kwargs(bootstrap),
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=64 * 1024,
    )


def _values(size: int) -> list[bytes]:
    return [
        raw_record(fake_address(i), message_payload(fake_address(i + 1)), size)
        for i in range(VALUE_POOL)
    ]


async def _produce(
    producer: AIOKafkaProducer,
    topic: str,
    values: list[bytes],
    n: int,
    on_acked: Callable[[int], None],
) -> float:
    """Send n records without waiting for each; returns when all are acknowledged."""
    pending: list[asyncio.Future[Any]] = []
    for i in range(n):
        pending.append(await producer.send(topic, values[i % len(values)], key=_key(i)))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            on_acked(len(pending))
            pending.clear()
    await asyncio.gather(*pending)
    on_acked(len(pending))
    return time.perf_counter()


async def kafka_throughput(topic: ScratchTopic, n: int, size: int) -> KafkaFigures:
    consumer = await topic.consumer_at_end()
    producer = _producer(topic.bootstrap, linger_ms=5)
    await producer.start()
    try:
        with Progress("raw kafka produce->consume", n, "rec") as bar:

            async def consume() -> float:
                got = 0
                while got < n:
                    batch = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
                    count = sum(len(records) for records in batch.values())
                    got += count
                    bar.update(count)
                return time.perf_counter()

            started = time.perf_counter()
            consumed = asyncio.create_task(consume())
            acked = await _produce(producer, topic.name, _values(size), n, lambda _: None)
            finished = await asyncio.wait_for(consumed, 120)
    finally:
        await producer.stop()
        await consumer.stop()
    return KafkaFigures(
        records=n,
        record_bytes=size,
        produce_per_s=rate(n, acked - started),
        produce_consume_per_s=rate(n, finished - started),
        mib_per_s=round(n * size / (finished - started) / (1 << 20), 2),
    )


async def kafka_latency(
    topic: ScratchTopic, n: int, per_second: float, size: int
) -> LatencySummary:
    """Produce start → consumed, one record at a time at a paced rate."""
    consumer = await topic.consumer_at_end()
    producer = _producer(topic.bootstrap, linger_ms=1)
    await producer.start()
    sent: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    try:

        async def consume() -> None:
            while len(seen) < n:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for records in batch.values():
                    for r in records:
                        seen[r.key] = now

        reader = asyncio.create_task(consume())
        value = _values(size)[0]
        acks = []
        t0 = time.perf_counter()
        with Progress("raw kafka latency", n, "rec") as bar:
            for i in range(n):
                delay = t0 + i / per_second - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = f"lat-{i:08d}".encode()
                sent[key] = time.perf_counter()
                acks.append(await producer.send(topic.name, value, key=key))
                bar.update()
        await asyncio.gather(*acks)
        await asyncio.wait_for(reader, 60)
    finally:
        await producer.stop()
        await consumer.stop()
    return summarize_ms([seen[k] - sent[k] for k in sent if k in seen])


def _prepare_schema(session: Session) -> None:
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.set_keyspace(KEYSPACE)
    session.execute(SCHEMA[0])  # the `mailbox` table, exactly as the sequencer creates it
    session.execute("TRUNCATE mailbox")


def _insert_statement(session: Session) -> Any:
    return session.prepare(
        "INSERT INTO mailbox (address, idx, event_type, payload, source_event_id,"
        " source_offset, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    )


def _rows(n: int, start: int = 0) -> list[tuple[Any, ...]]:
    payloads = [message_payload(fake_address(i + 1)) for i in range(VALUE_POOL)]
    now = datetime.now(UTC)
    return [
        (
            fake_address(i % READ_IDENTITIES),
            start + i // READ_IDENTITIES + 1,
            "MessageReceived",
            payloads[i % VALUE_POOL],
            str(uuid.uuid4()),
            i,
            now,
            TTL_S,
        )
        for i in range(start, start + n)
    ]


def _insert_all(session: Session, statement: Any, rows: list[tuple[Any, ...]], c: int) -> None:
    for ok, outcome in execute_concurrent_with_args(
        session, statement, rows, concurrency=c, raise_on_first_error=True
    ):
        if not ok:
            raise outcome


def cassandra_inserts(session: Session, n: int, concurrency: int) -> tuple[float, float]:
    """Returns (inserts/s, paged read rows/s)."""
    statement = _insert_statement(session)
    rows = _rows(n)
    chunk = 5000
    with Progress("raw cassandra inserts", n, "row") as bar:
        started = time.perf_counter()
        for i in range(0, n, chunk):
            _insert_all(session, statement, rows[i : i + chunk], concurrency)
            bar.update(len(rows[i : i + chunk]))
        inserted = time.perf_counter() - started
    page = session.prepare(
        "SELECT idx, event_type, payload, created_at FROM mailbox"
        " WHERE address = ? AND idx > ? LIMIT 1000"
    )
    read = 0
    with Progress("raw cassandra page reads", n, "row") as bar:
        started = time.perf_counter()
        for a in range(READ_IDENTITIES):
            since = 0
            while True:
                got = list(session.execute(page, (fake_address(a), since)))
                if not got:
                    break
                read += len(got)
                bar.update(len(got))
                since = got[-1].idx
        read_s = time.perf_counter() - started
    return rate(n, inserted), rate(read, read_s)


def _nodelay_session(cluster: ClusterSettings) -> tuple[Any, Session]:
    """Like `store.cassandra.connect`, but with TCP_NODELAY on the driver's sockets
    (the driver leaves Nagle's algorithm on unless given `sockopts`)."""
    session_cluster = Cluster(
        **cassandra_cluster_kwargs(cluster),
        protocol_version=ProtocolVersion.V5,
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy())
            )
        },
        sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    session = session_cluster.connect(KEYSPACE)
    return session_cluster, session


def _sequential_batches(session: Session, rows: list[tuple[Any, ...]], per: int) -> list[float]:
    statement = _insert_statement(session)
    took = []
    for i in range(0, len(rows), per):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for row in rows[i : i + per]:
            batch.add(statement, row)
        started = time.perf_counter()
        session.execute(batch)
        took.append(time.perf_counter() - started)
    return took


def cassandra_batches(session: Session, cluster: ClusterSettings, n: int) -> BatchFigures:
    """One identity's rows in single-partition unlogged batches of `SEQUENCER_BATCH_ROWS`,
    one after the other: the mailbox sequencer's write pattern when one identity has a
    backlog. Once with the driver's default sockets (as the backbone connects), once with
    TCP_NODELAY: a multi-kilobyte request otherwise waits for the peer's delayed ACK."""
    rows = [("did:e:localhost:dids:benchbatch", i + 1, *r[2:]) for i, r in enumerate(_rows(n))]
    with Progress("raw cassandra one-partition batches", 2 * n, "row") as bar:
        started = time.perf_counter()
        plain = _sequential_batches(session, rows, SEQUENCER_BATCH_ROWS)
        plain_s = time.perf_counter() - started
        bar.update(n)
        fast_cluster, fast = _nodelay_session(cluster)
        try:
            started = time.perf_counter()
            nodelay = _sequential_batches(fast, rows, SEQUENCER_BATCH_ROWS)
            nodelay_s = time.perf_counter() - started
        finally:
            fast_cluster.shutdown()
        bar.update(n)
    return BatchFigures(
        rows=n,
        rows_per_batch=SEQUENCER_BATCH_ROWS,
        rows_per_s=rate(n, plain_s),
        batch_median_ms=round(1000 * statistics.median(plain), 1),
        rows_per_s_nodelay=rate(n, nodelay_s),
        batch_median_ms_nodelay=round(1000 * statistics.median(nodelay), 1),
    )


async def pipeline(
    topic: ScratchTopic, session: Session, n: int, size: int, c: int
) -> PipelineFigures:
    """Produce → consume → insert, records/s from the first send to the last row."""
    consumer = await topic.consumer_at_end()
    producer = _producer(topic.bootstrap, linger_ms=5)
    await producer.start()
    statement = _insert_statement(session)
    next_idx: dict[str, int] = {}
    now = datetime.now(UTC)
    try:
        with Progress("raw pipeline produce->consume->insert", n, "rec") as bar:

            async def consume_and_insert() -> float:
                done = 0
                while done < n:
                    batch = await consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
                    rows = []
                    for records in batch.values():
                        for r in records:
                            record = json.loads(r.value)
                            idx = next_idx.get(record["a"], 0) + 1
                            next_idx[record["a"]] = idx
                            rows.append(
                                (
                                    record["a"],
                                    idx,
                                    record["t"],
                                    record["p"],
                                    record["s"],
                                    r.offset,
                                    now,
                                    TTL_S,
                                )
                            )
                    if rows:
                        # The driver's threads do the I/O; this loop waits for the batch
                        # like the sequencer waits before it fetches (and commits) more.
                        await asyncio.to_thread(_insert_all, session, statement, rows, c)
                        done += len(rows)
                        bar.update(len(rows))
                return time.perf_counter()

            started = time.perf_counter()
            inserter = asyncio.create_task(consume_and_insert())
            await _produce(producer, topic.name, _values(size), n, lambda _: None)
            finished = await asyncio.wait_for(inserter, 600)
    finally:
        await producer.stop()
        await consumer.stop()
    return PipelineFigures(
        records=n, records_per_s=rate(n, finished - started), seconds=round(finished - started, 2)
    )


async def measure(cluster: ClusterSettings, partitions: int, cfg: RawConfig) -> dict[str, Any]:
    size = sealed_entry_size()
    cassandra, session = await asyncio.to_thread(connect, cluster, None)
    try:
        await asyncio.to_thread(_prepare_schema, session)
        async with ScratchTopic(cluster.kafka_bootstrap, partitions) as topic:
            kafka = await kafka_throughput(topic, cfg.kafka_records, size)
            kafka["latency"] = await kafka_latency(
                topic, cfg.latency_records, cfg.latency_rate, size
            )
            kafka["latency_rate_per_s"] = cfg.latency_rate
            inserts, reads = await asyncio.to_thread(
                cassandra_inserts, session, cfg.cassandra_rows, cfg.concurrency
            )
            batches = await asyncio.to_thread(cassandra_batches, session, cluster, cfg.batch_rows)
            await asyncio.to_thread(session.execute, "TRUNCATE mailbox")
            piped = await pipeline(topic, session, cfg.pipeline_records, size, cfg.concurrency)
        return {
            "kafka": kafka,
            "cassandra": CassandraFigures(
                rows=cfg.cassandra_rows,
                concurrency=cfg.concurrency,
                inserts_per_s=inserts,
                read_rows_per_s=reads,
                row_payload_bytes=len(message_payload(fake_address(1))),
            ),
            "cassandra_batches": batches,
            "pipeline": piped,
        }
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(session.execute, f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
        await asyncio.to_thread(cassandra.shutdown)
