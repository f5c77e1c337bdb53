"""The auditor's Cassandra tables, in their own keyspace (BACKBONE_AUDIT_KEYSPACE): they are
evidence about the log, not read models, so a replay into a fresh keyspace and a switch
between keyspaces leave them alone.

    audit_state        per partition: tree size, right edge, next offset to read
    audit_leaves       leaf hashes with their offsets, 1024 per row (40 bytes a leaf)
    audit_checkpoints  every signed checkpoint, bucketed by month (a partition's rows stay
                       small: at one checkpoint a minute, 44,640 rows a month)
    audit_checkpoint_months  which month buckets a partition has
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.cluster import Session

from backbone.audit.checkpoints import Checkpoint
from backbone.audit.merkle import CompactTree
from streams.readmodels import create_keyspace

CHUNK = 1024  # leaves per audit_leaves row
_LEAF_ROW = struct.Struct(">q32s")  # offset, leaf hash

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS audit_state (
        topic text, partition int,
        size bigint, edge blob, next_offset bigint, last_offset bigint,
        PRIMARY KEY ((topic, partition)))""",
    """CREATE TABLE IF NOT EXISTS audit_leaves (
        topic text, partition int, chunk bigint, leaves blob,
        PRIMARY KEY ((topic, partition, chunk)))""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        topic text, partition int, month text, size bigint, checkpoint text,
        PRIMARY KEY ((topic, partition, month), size))
        WITH CLUSTERING ORDER BY (size DESC)""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoint_months (
        topic text, partition int, month text,
        PRIMARY KEY ((topic, partition), month))""",
]


def create_schema(session: Session, keyspace: str, replication: str = "1") -> None:
    """`replication` as BACKBONE_CASSANDRA_REPLICATION: the evidence is kept like the
    read models."""
    create_keyspace(session, keyspace, replication)
    for statement in SCHEMA:
        session.execute(statement)


@dataclass
class PartitionState:
    topic: str
    partition: int
    tree: CompactTree
    next_offset: int  # where the auditor resumes reading
    last_offset: int  # offset of the tree's last leaf, -1 when empty


def month_of(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m")


def pack_leaves(leaves: list[tuple[int, bytes]]) -> bytes:
    return b"".join(_LEAF_ROW.pack(offset, leaf) for offset, leaf in leaves)


def unpack_leaves(blob: bytes) -> list[tuple[int, bytes]]:
    return [(o, h) for o, h in _LEAF_ROW.iter_unpack(blob)]


class AuditStore:
    """Synchronous access (the driver's own threads do the I/O); the auditor calls it from
    a thread so that its Kafka loop is never blocked."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._put_state = session.prepare(
            "INSERT INTO audit_state (topic, partition, size, edge, next_offset, last_offset) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._get_state = session.prepare(
            "SELECT size, edge, next_offset, last_offset FROM audit_state "
            "WHERE topic = ? AND partition = ?"
        )
        self._put_chunk = session.prepare(
            "INSERT INTO audit_leaves (topic, partition, chunk, leaves) VALUES (?, ?, ?, ?)"
        )
        self._get_chunk = session.prepare(
            "SELECT leaves FROM audit_leaves WHERE topic = ? AND partition = ? AND chunk = ?"
        )
        self._put_checkpoint = session.prepare(
            "INSERT INTO audit_checkpoints (topic, partition, month, size, checkpoint) "
            "VALUES (?, ?, ?, ?, ?)"
        )
        self._put_month = session.prepare(
            "INSERT INTO audit_checkpoint_months (topic, partition, month) VALUES (?, ?, ?)"
        )
        self._months = session.prepare(
            "SELECT month FROM audit_checkpoint_months WHERE topic = ? AND partition = ?"
        )
        self._checkpoints = session.prepare(
            "SELECT checkpoint FROM audit_checkpoints WHERE topic = ? AND partition = ? "
            "AND month = ?"
        )

    def load_state(self, topic: str, partition: int) -> PartitionState | None:
        row = self._s.execute(self._get_state, (topic, partition)).one()
        if row is None:
            return None
        tree = CompactTree.from_bytes(row.size, row.edge or b"")
        return PartitionState(topic, partition, tree, row.next_offset, row.last_offset)

    def save_state(self, state: PartitionState) -> None:
        self._s.execute(
            self._put_state,
            (
                state.topic,
                state.partition,
                state.tree.size,
                state.tree.to_bytes(),
                state.next_offset,
                state.last_offset,
            ),
        )

    def save_chunks(self, topic: str, partition: int, chunks: dict[int, bytes]) -> None:
        futures = [
            self._s.execute_async(self._put_chunk, (topic, partition, number, blob))
            for number, blob in chunks.items()
        ]
        for f in futures:
            f.result()

    def load_chunk(self, topic: str, partition: int, number: int) -> list[tuple[int, bytes]]:
        row = self._s.execute(self._get_chunk, (topic, partition, number)).one()
        return unpack_leaves(row.leaves) if row is not None else []

    def load_leaves(self, topic: str, partition: int, size: int) -> list[tuple[int, bytes]]:
        """The first `size` stored leaves (offset, hash); fewer if fewer are stored."""
        numbers = range((size + CHUNK - 1) // CHUNK)
        # Issued together: a partition of a million records is a thousand rows.
        futures = [self._s.execute_async(self._get_chunk, (topic, partition, n)) for n in numbers]
        out: list[tuple[int, bytes]] = []
        for f in futures:
            row = f.result().one()
            if row is None:
                break
            got = unpack_leaves(row.leaves)
            out.extend(got)
            if len(got) < CHUNK:
                break
        return out[:size]

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        head = checkpoint.head
        month = month_of(head.time_ms)
        self._s.execute(self._put_month, (head.topic, head.partition, month))
        self._s.execute(
            self._put_checkpoint,
            (head.topic, head.partition, month, head.size, checkpoint.to_json()),
        )

    def checkpoints(self, topic: str, partition: int) -> Iterator[Checkpoint | str]:
        """Every stored checkpoint of a partition (a str: a row that does not parse)."""
        months = [r.month for r in self._s.execute(self._months, (topic, partition))]
        for month in sorted(months):
            for row in self._s.execute(self._checkpoints, (topic, partition, month)):
                try:
                    yield Checkpoint.from_json(row.checkpoint)
                except ValueError as exc:
                    yield str(exc)

    def partitions(self, topic: str) -> list[int]:
        rows = self._s.execute("SELECT topic, partition FROM audit_state")
        return sorted(r.partition for r in rows if r.topic == topic)
