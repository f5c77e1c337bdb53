"""What a projection writes, as data, and the one place that sends it.

A projection answers an event with its writes: a list of (prepared statement, values),
computed without I/O. Whoever runs the projection decides how they go out: the workers
send one event's writes (or a poll's worth) at once and wait for them together
(`write_all`); the replay groups a checkpoint's writes into unlogged batches
(backbone/replay/batching.py). Every write is an idempotent upsert or delete carrying its
own timestamp (the aggregate's version) or none where the newest must win whatever came
before, so the writes of one event, or of many, may land in any order.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, BoundStatement

Write = tuple[Any, tuple[Any, ...]]  # a prepared statement and the values it binds

# Cassandra logs a warning for each batch over batch_size_warn_threshold (5 KiB by default,
# as it counts a batch: about four times the values' bytes for our small rows; measured
# 6.5 KiB for a 5-recipient message's 1.6 KiB of values). A batch is closed at 1 KiB of
# values, and a statement over half of that goes alone: a warning per batch was thousands
# of log lines per benchmark run, and each costs Cassandra CPU.
MAX_BATCH_BYTES = 1024
MAX_BATCH_STATEMENTS = 64
# Cassandra logs a warning for each unlogged batch over more partitions than this
# (unlogged_batch_across_partitions_warn_threshold).
MAX_PARTITIONS = 10


def write(statement: Any, *values: Any) -> Write:
    return statement, values


def aware(at: datetime) -> datetime:
    """Avro's timestamps come back naive (UTC); comparisons need them aware."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def remaining_ttl(seconds: int, since: datetime, now: datetime) -> int:
    """The TTL a row must get now to expire `seconds` after `since` (an event's time), so
    that a row written late (a replay, a worker catching up) expires when the row written
    at the time did; 0 when that moment has passed (write nothing: CQL's TTL 0 means
    never)."""
    left = seconds - int((aware(now) - aware(since)).total_seconds())
    return max(left, 0)


async def write_all(session: Session, writes: Sequence[Write]) -> None:
    """Sends every write at once and returns when all are done; raises the first failure
    (after all have settled, so a retry never overlaps a write still in flight).

    One asyncio future for the lot, settled from the driver's threads by the last
    callback: no coroutine, task or loop wake-up per statement.
    """
    if not writes:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    lock = threading.Lock()
    state: dict[str, Any] = {"left": len(writes), "error": None}

    def settled(error: BaseException | None) -> None:
        with lock:
            if error is not None and state["error"] is None:
                state["error"] = error
            state["left"] -= 1
            last = state["left"] == 0
        if last:
            loop.call_soon_threadsafe(_resolve, done, state["error"])

    def ok(_: Any) -> None:
        settled(None)

    for statement, values in writes:
        try:
            response = session.execute_async(statement, values)
        except Exception as exc:  # binding failed: counts as a failed write
            settled(exc)
            continue
        response.add_callbacks(ok, settled)
    await done


def _resolve(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(None)


def grouped(session: Session, writes: Sequence[Write]) -> list[Write]:
    """The same writes as fewer requests: unlogged batches of partitions on the same
    replicas (each applied by a coordinator on its own node), for `write_all`."""
    bound = [statement.bind(values) for statement, values in writes]
    return [(request, ()) for request in batches(bound, replicas_of(session))]


def replicas_of(session: Session) -> Callable[[BoundStatement], Any] | None:
    """What names a statement's replicas, for `batches`; None on a one-node cluster (every
    partition is on it: no token to look up)."""
    metadata = session.cluster.metadata
    if len(metadata.all_hosts()) <= 1:
        return None

    def replicas(bound: BoundStatement) -> Any:
        hosts = metadata.get_replicas(bound.keyspace, bound.routing_key)
        return tuple(sorted(str(h.endpoint) for h in hosts))

    return replicas


def _size(values: Any) -> int:
    return sum(len(v) if isinstance(v, bytes | str) else 8 for v in values or ())


def batches(bound: list[BoundStatement], replicas: Any = None) -> list[Any]:
    """Unlogged batches of bound statements whose partitions live on the same replicas
    (`replicas(statement)` names them; None: all on one node), of bounded size and at most
    MAX_PARTITIONS partitions each."""
    groups: dict[Any, list[BoundStatement]] = defaultdict(list)
    requests: list[Any] = []
    for statement in bound:
        if statement.routing_key is None:
            requests.append(statement)
        else:
            groups[replicas(statement) if replicas else None].append(statement)
    for statements in groups.values():
        statements.sort(key=lambda b: b.routing_key)
        members: list[BoundStatement] = []
        size = 0
        keys: set[bytes] = set()
        for statement in statements:
            weight = _size(statement.values)
            if weight > MAX_BATCH_BYTES // 2:
                requests.append(statement)
                continue
            if members and (
                size + weight > MAX_BATCH_BYTES
                or len(members) >= MAX_BATCH_STATEMENTS
                or (statement.routing_key not in keys and len(keys) >= MAX_PARTITIONS)
            ):
                requests.append(_batch(members))
                members, size, keys = [], 0, set()
            members.append(statement)
            size += weight
            keys.add(statement.routing_key)
        if members:
            requests.append(_batch(members))
    return requests


def _batch(members: list[BoundStatement]) -> Any:
    """An unlogged batch of the statements; one statement is sent as itself."""
    if len(members) == 1:
        return members[0]
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for statement in members:
        batch.add(statement)
    return batch
