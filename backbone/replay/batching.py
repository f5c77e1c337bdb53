"""A session for the replay's projection that sends its writes in unlogged batches.

The projection writes one statement per request, as the workers need (each event is
acknowledged when its rows are written). A replay only needs its rows written before it
saves a checkpoint, so `BatchingSession` stands in for the target session: a write (an
INSERT, UPDATE or DELETE without a condition) is only noted and reported done at once;
`flush()` (before every checkpoint) sends what was noted as unlogged batches of partitions
on the same replicas (a coordinator applies each on its own node), many at once, and
waits for them, sending again what failed. The projection's writes are idempotent and
independent (each row carries the event's version as its timestamp), so the order they
land in does not matter. Writes whose order matters must not come here: the mailbox
sequencer writes a head only after its rows (a killed replay that had sent both at once
could leave a head without its rows, and the resumed one would skip them), so the replay
gives it the target session itself.

A read is sent after every write noted before it has been written. Conditional writes
(IF ...) are sent as they are, after the noted writes.

Measured with `python -m bench.replay --compare-unbatched`: the replay's own CPU per record
falls by about a third and its requests from about one per record to one per twelve; the
rest of its CPU is opening records and the driver binding each statement.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from cassandra.cluster import ResponseFuture, Session
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from store.cassandra import execute

log = logging.getLogger("backbone.replay.batching")

# Cassandra refuses a batch over batch_size_fail_threshold (50 KiB by default) and logs a
# warning for each over 5 KiB: a batch is closed at about 40 KiB of values.
MAX_BATCH_BYTES = 40 * 1024
MAX_BATCH_STATEMENTS = 64
# Cassandra logs a warning for each unlogged batch over more partitions than this
# (unlogged_batch_across_partitions_warn_threshold).
MAX_PARTITIONS = 10
# Batches in flight at once: the driver's connections carry thousands of requests; more
# than this only queues in Cassandra on a 2-core machine.
CONCURRENCY = 128


def _size(values: Any) -> int:
    return sum(len(v) if isinstance(v, bytes | str) else 8 for v in values or ())


class _Written:
    """What a noted write answers: done, no rows (store.cassandra.execute returns at once
    for a `settled` answer)."""

    settled = True

    def add_callbacks(self, callback: Callable[[Any], Any], errback: Any) -> None:
        callback([])

    def result(self) -> Any:
        return _NoRows()


class _NoRows(list[Any]):
    def one(self) -> None:
        return None

    @property
    def was_applied(self) -> bool:
        return True


class _AfterWrites:
    """A read (or a conditional write) sent once the writes before it are done."""

    def __init__(self, send: Callable[[], ResponseFuture], waiting: list[ResponseFuture]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._left = len(waiting)
        self._callbacks: list[tuple[Callable[[Any], Any], Callable[[BaseException], Any]]] = []
        self._outcome: tuple[Any, BaseException | None] | None = None
        for future in waiting:
            future.add_callbacks(self._one_done, self._one_done)

    def _one_done(self, _: Any) -> None:
        with self._lock:
            self._left -= 1
            ready = self._left == 0
        if ready:
            # A failed write is sent again by `flush`; the read goes ahead (as a read after
            # a failed write does on a live session) and the caller's retry reads again.
            response = self._send()
            response.add_callbacks(self._settle_ok, self._settle_failed)

    def _settle_ok(self, rows: Any) -> None:
        self._settle((rows, None))

    def _settle_failed(self, error: BaseException) -> None:
        self._settle((None, error))

    def _settle(self, outcome: tuple[Any, BaseException | None]) -> None:
        with self._lock:
            self._outcome = outcome
            callbacks, self._callbacks = self._callbacks, []
        for ok, failed in callbacks:
            _call(ok, failed, outcome)

    def add_callbacks(
        self, ok: Callable[[Any], Any], failed: Callable[[BaseException], Any]
    ) -> None:
        with self._lock:
            if self._outcome is None:
                self._callbacks.append((ok, failed))
                return
            outcome = self._outcome
        _call(ok, failed, outcome)

    def result(self) -> Any:
        assert self._outcome is not None, "result() before the callbacks ran"
        rows, error = self._outcome
        if error is not None:
            raise error
        return _Rows(rows)


class _Rows(list[Any]):
    def one(self) -> Any:
        return self[0] if self else None


def _call(
    ok: Callable[[Any], Any],
    failed: Callable[[BaseException], Any],
    outcome: tuple[Any, BaseException | None],
) -> None:
    rows, error = outcome
    if error is not None:
        failed(error)
    else:
        ok(rows)


class BatchingSession:
    """Stands in for a `Session` where the replay's projection and sequencer use one:
    `prepare`, `execute_async`, and `flush` for the replay."""

    def __init__(self, session: Session, enabled: bool = True) -> None:
        self.session = session
        self.enabled = enabled  # False: every statement is sent at once, alone
        self.keyspace = session.keyspace
        self._lock = threading.Lock()
        self._noted: list[Any] = []  # bound statements, and statements sent alone
        self._in_flight: dict[int, tuple[ResponseFuture, Any]] = {}
        self._failed: list[Any] = []
        self._is_write: dict[int, bool] = {}
        self.requests = 0  # sent to Cassandra
        self.statements = 0  # asked for by the projection and the sequencer

    def _replicas(self, bound: BoundStatement) -> Any:
        metadata = self.session.cluster.metadata
        return tuple(
            sorted(
                str(h.endpoint) for h in metadata.get_replicas(bound.keyspace, bound.routing_key)
            )
        )

    def prepare(self, query: str) -> PreparedStatement:
        return self.session.prepare(query)

    def _write(self, statement: Any) -> bool:
        if isinstance(statement, BatchStatement):
            return True
        if not isinstance(statement, PreparedStatement):
            return False
        known = self._is_write.get(id(statement))
        if known is None:
            words = statement.query_string.upper().split()
            known = words[0] in ("INSERT", "UPDATE", "DELETE") and "IF" not in words
            self._is_write[id(statement)] = known
        return known

    def execute_async(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        self.statements += 1
        if self.enabled and self._write(statement):
            with self._lock:
                self._noted.append(
                    statement
                    if isinstance(statement, BatchStatement)
                    else statement.bind(parameters or ())
                )
            return _Written()
        waiting = self._send_noted() if self.enabled else []
        if not waiting:
            self.requests += 1
            return self.session.execute_async(statement, parameters, **kwargs)
        return _AfterWrites(
            lambda: self.session.execute_async(statement, parameters, **kwargs), waiting
        )

    def _send_noted(self) -> list[ResponseFuture]:
        """Sends every noted write; returns everything in flight (sent now or before)."""
        with self._lock:
            noted, self._noted = self._noted, []
            noted += self._failed
            self._failed = []
        for request in _batches(noted, self._replicas):
            self.requests += 1
            future = self.session.execute_async(request)
            with self._lock:
                self._in_flight[id(future)] = (future, request)
            future.add_callbacks(
                self._sent, self._not_sent, callback_args=(id(future),), errback_args=(id(future),)
            )
        with self._lock:
            return [f for f, _ in self._in_flight.values()]

    def _sent(self, _: Any, key: int) -> None:
        with self._lock:
            self._in_flight.pop(key, None)

    def _not_sent(self, error: BaseException, key: int) -> None:
        with self._lock:
            _, request = self._in_flight.pop(key, (None, None))
            if request is not None:
                self._failed.append(request)
        log.warning("a replay batch failed; sent again", extra={"error": type(error).__name__})

    async def flush(self) -> None:
        """Until every noted write is written (a failed batch is sent again)."""
        while True:
            waiting = self._send_noted()
            if not waiting:
                with self._lock:
                    if not self._noted and not self._failed:
                        return
                continue
            await asyncio.gather(*(_wait(f) for f in waiting), return_exceptions=True)
            with self._lock:
                again = bool(self._failed)
            if again:
                await asyncio.sleep(0.5)


async def _wait(future: ResponseFuture) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(_: Any) -> None:
        loop.call_soon_threadsafe(_resolve, done)

    future.add_callbacks(settle, settle)
    await done


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _batches(noted: list[Any], replicas: Callable[[BoundStatement], Any]) -> list[Any]:
    """Unlogged batches of bound statements whose partitions live on the same replicas
    (the coordinator applies each on its own node), of bounded size and at most
    MAX_PARTITIONS partitions; statements that are batches already go alone."""
    groups: dict[Any, list[BoundStatement]] = defaultdict(list)
    alone: list[Any] = []
    for statement in noted:
        if isinstance(statement, BoundStatement) and statement.routing_key is not None:
            groups[replicas(statement)].append(statement)
        else:
            alone.append(statement)
    requests: list[Any] = list(alone)
    for statements in groups.values():
        if len(statements) == 1:
            requests.append(statements[0])
            continue
        statements.sort(key=lambda b: b.routing_key)
        batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
        keys: set[bytes] = set()
        for bound in statements:
            weight = _size(bound.values)
            if len(batch) and (
                size + weight > MAX_BATCH_BYTES
                or len(batch) >= MAX_BATCH_STATEMENTS
                or (bound.routing_key not in keys and len(keys) >= MAX_PARTITIONS)
            ):
                requests.append(batch)
                batch, size, keys = BatchStatement(batch_type=BatchType.UNLOGGED), 0, set()
            batch.add(bound)
            size += weight
            keys.add(bound.routing_key)
        requests.append(batch)
    return requests


__all__ = ["BatchingSession", "execute"]
