"""The mailbox sequencer: gives each identity's entries the indexes 1, 2, 3 … with no gap
and no duplicate, also across worker crashes and partition moves.

How it holds:
- An identity's entries all arrive on one partition of `mailbox-entries`, in order; one
  worker owns that partition at a time.
- The sequence is a pure function of that record order: index i goes to the i-th entry not
  seen before. A worker that takes the partition over (or a zombie that still runs) reads
  the identity's head from Cassandra and continues it, and writes what any other owner would.
- An identity's new rows are written in index order, in single-partition batches (each
  applied atomically by Cassandra) one after the other: whatever a crash leaves written is
  a prefix of the sequence, never a gap.
- Each row remembers the Kafka offset of its record, so a record redelivered after a crash
  (offset at or below the last written one) is skipped; and the source event id of the
  last entries is kept, so an entry produced twice upstream (a projector redelivery) is
  skipped too.
- `mailbox_heads` (never expiring) keeps the next index even after old entries expired; it
  is written after the rows and may lag, so on take-over rows beyond it are read as well.
- A row keeps the retention counted from its entry's time (`occurred_at`), so one written
  late (a replay, a sequencer catching up) expires when one written at once would have;
  an entry already past it takes its index and gets no row (as if it had expired). Its
  offset is then not on a row: a take-over that finds no later row numbers it again, with
  the same index (the sequence is a function of the record order), and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from store.cassandra import execute
from streams.writes import remaining_ttl

log = logging.getLogger("backbone.streams.sequencer")

# Source event ids remembered per identity for dropping upstream duplicates. Duplicates
# come from a projector redelivery, so they are close behind the original.
DEDUP_WINDOW = 2000
# Cassandra refuses batches over `batch_size_fail_threshold` (50 KiB by default).
MAX_BATCH_BYTES = 40 * 1024

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS mailbox (
        address text,
        idx bigint,
        event_type text,
        payload text,
        source_event_id text,
        source_offset bigint,
        created_at timestamp,
        PRIMARY KEY (address, idx))""",
    """CREATE TABLE IF NOT EXISTS mailbox_heads (
        address text PRIMARY KEY,
        next_idx bigint,
        last_offset bigint)""",
]


@dataclass(frozen=True)
class Entry:
    """A mailbox entry as it came off the topic."""

    offset: int
    recipient: str
    event_type: str
    payload_json: str
    source_event_id: str
    occurred_at: datetime


@dataclass
class Head:
    next_idx: int = 1
    last_offset: int = -1
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=DEDUP_WINDOW))
    recent_set: set[str] = field(default_factory=set)

    def remember(self, source_event_id: str) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.recent_set.discard(self.recent[0])
        self.recent.append(source_event_id)
        self.recent_set.add(source_event_id)


@dataclass(frozen=True)
class Sequenced:
    address: str
    first: int
    last: int


Announce = Callable[[Sequenced], Awaitable[None]]


class Sequencer:
    def __init__(self, session: Session, retention_s: int) -> None:
        self.session = session
        self.retention_s = retention_s
        self._heads: dict[str, Head] = {}
        self._insert = session.prepare(
            "INSERT INTO mailbox (address, idx, event_type, payload, source_event_id,"
            " source_offset, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?"
        )
        self._head = session.prepare(
            "INSERT INTO mailbox_heads (address, next_idx, last_offset) VALUES (?, ?, ?)"
        )
        self._read_head = session.prepare(
            "SELECT next_idx, last_offset FROM mailbox_heads WHERE address = ?"
        )
        self._rows_from = session.prepare(
            "SELECT idx, source_event_id, source_offset FROM mailbox WHERE address = ? AND idx >= ?"
        )
        self._last_rows = session.prepare(
            "SELECT idx, source_event_id, source_offset FROM mailbox"
            " WHERE address = ? ORDER BY idx DESC LIMIT ?"
        )

    def forget(self) -> None:
        """Drop cached heads (on a rebalance: another worker may have moved them on)."""
        self._heads.clear()

    async def sequence(
        self, entries: list[Entry], announce: Announce | None = None
    ) -> list[Sequenced]:
        """Write a batch of entries (in topic order); returns the new index range per
        identity. Identities are written concurrently, each one in order. `announce` is
        called for an identity as soon as its rows are written, while its head is saved."""
        by_identity: dict[str, list[Entry]] = {}
        for entry in entries:
            by_identity.setdefault(entry.recipient, []).append(entry)
        # Every identity finishes before a failure is raised: the caller retries the whole
        # batch, and an identity still being written by the failed attempt could otherwise
        # be skipped by the retry (its cached head already counts the rows) and then fail.
        results = await asyncio.gather(
            *(self._sequence_one(address, mine, announce) for address, mine in by_identity.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                # The store failed: what it holds now is what counts (a node that died may
                # have come back without writes it had acknowledged), so every head is read
                # again before the next index is given.
                self.forget()
                raise result
        return [r for r in results if isinstance(r, Sequenced)]

    async def _sequence_one(
        self, address: str, entries: list[Entry], announce: Announce | None
    ) -> Sequenced | None:
        head = self._heads.get(address) or await self._load(address)
        self._heads[address] = head
        first = head.next_idx
        now = datetime.now(UTC)
        rows: list[tuple[Any, ...]] = []
        for entry in entries:
            if entry.offset <= head.last_offset or entry.source_event_id in head.recent_set:
                continue  # redelivered, or produced twice upstream
            ttl = remaining_ttl(self.retention_s, entry.occurred_at, now)
            if ttl > 0:
                rows.append(
                    (
                        address,
                        head.next_idx,
                        entry.event_type,
                        entry.payload_json,
                        entry.source_event_id,
                        entry.offset,
                        entry.occurred_at,
                        ttl,
                    )
                )
            head.next_idx += 1
            head.last_offset = entry.offset
            head.remember(entry.source_event_id)
        if head.next_idx == first:
            return None
        try:
            for chunk in _chunks(rows) if rows else []:
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for row in chunk:
                    batch.add(self._insert, row)
                await execute(self.session, batch)
        except Exception:
            self._heads.pop(address, None)  # re-read what was really written next time
            raise
        done = Sequenced(address, first, head.next_idx - 1)
        # The head may lag the rows (a take-over reads the rows after it), so the readers
        # are told about the rows without waiting for it.
        save_head = execute(self.session, self._head, (address, head.next_idx, head.last_offset))
        work: list[Awaitable[Any]] = [save_head]
        if announce is not None:
            work.append(announce(done))
        await asyncio.gather(*work)
        return done

    async def _load(self, address: str) -> Head:
        head = Head()
        row = (await execute(self.session, self._read_head, (address,))).one()
        if row is not None:
            head.next_idx, head.last_offset = row.next_idx, row.last_offset
        # Rows written after the head (a crash between the two writes).
        for r in await execute(self.session, self._rows_from, (address, head.next_idx)):
            head.next_idx = max(head.next_idx, r.idx + 1)
            head.last_offset = max(head.last_offset, r.source_offset)
        recent = await execute(self.session, self._last_rows, (address, DEDUP_WINDOW))
        for r in reversed(list(recent)):
            head.remember(r.source_event_id)
        return head


def _chunks(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    chunks: list[list[tuple[Any, ...]]] = [[]]
    size = 0
    for row in rows:
        row_size = len(row[3]) + 200  # the payload, and the rest of the row roughly
        if chunks[-1] and size + row_size > MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += row_size
    return chunks
