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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

Write = tuple[Any, tuple[Any, ...]]  # a prepared statement and the values it binds


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
