"""How the replay sends the projection's writes: unlogged batches, a bounded window.

The projection answers each event with its writes (streams/writes.py); a replay only
needs them written before it saves a checkpoint. `BatchWriter.write` takes a checkpoint's
writes, binds them, groups them into unlogged batches of partitions on the same replicas
(a coordinator applies each on its own node; on a one-node cluster that is every
partition), and sends the batches with at most WINDOW requests in flight over all the
partitions being replayed, from the driver's own callbacks: no coroutine or event-loop
wake-up per request, one per checkpoint. A failed request is sent again until it is
written. The writes are idempotent and independent (each row carries the event's version
as its timestamp, or none where the newest must win), so the order they land in does not
matter. Writes whose order matters must not come here: the mailbox sequencer writes a head
only after its rows (a killed replay that had sent both at once could leave a head without
its rows, and the resumed one would skip them), so it writes through the session itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session

from streams.writes import Write, batches, replicas_of

log = logging.getLogger("backbone.replay.batching")

# Requests in flight at once over every partition of a replay process: more than this
# only queues in Cassandra on a 2-core machine, and thousands at once time out.
WINDOW = 128


@dataclass
class _Checkpoint:
    """One `write` call's requests: how many are still out, which failed."""

    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[list[Any]]
    left: int
    failed: list[Any] = field(default_factory=list)


class BatchWriter:
    def __init__(self, session: Session, enabled: bool = True, window: int = WINDOW) -> None:
        self.session = session
        self.enabled = enabled  # False: one request per statement (bench.replay's ratio)
        self.window = window
        self.requests = 0  # sent to Cassandra
        self.statements = 0  # written by the projection
        self._lock = threading.Lock()
        self._queue: deque[tuple[Any, _Checkpoint]] = deque()
        self._in_flight = 0

    async def write(self, writes: Sequence[Write]) -> None:
        """Until every write is written (a failed request is sent again)."""
        self.statements += len(writes)
        requests = self._requests(writes)
        while requests:
            failed = await self._send(requests)
            if failed:
                log.warning("replay writes failed; sent again", extra={"requests": len(failed)})
                await asyncio.sleep(0.5)
            requests = failed

    def _requests(self, writes: Sequence[Write]) -> list[Any]:
        bound = [statement.bind(values) for statement, values in writes]
        if not self.enabled:
            return bound
        return batches(bound, replicas_of(self.session))

    async def _send(self, requests: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        checkpoint = _Checkpoint(loop, loop.create_future(), len(requests))
        with self._lock:
            self._queue.extend((r, checkpoint) for r in requests)
        self._pump()
        return await checkpoint.done

    def _pump(self) -> None:
        """Sends queued requests while fewer than `window` are in flight; runs on the event
        loop and on the driver's threads (from a request's callback)."""
        while True:
            with self._lock:
                if self._in_flight >= self.window or not self._queue:
                    return
                request, checkpoint = self._queue.popleft()
                self._in_flight += 1
                self.requests += 1
            try:
                future = self.session.execute_async(request)
            except Exception as exc:  # e.g. no connection: counts as failed, sent again
                self._settled(exc, request, checkpoint)
                continue
            future.add_callbacks(
                self._written,
                self._settled,
                callback_args=(request, checkpoint),
                errback_args=(request, checkpoint),
            )

    def _written(self, _: Any, request: Any, checkpoint: _Checkpoint) -> None:
        self._settled(None, request, checkpoint)

    def _settled(self, error: Any, request: Any, checkpoint: _Checkpoint) -> None:
        with self._lock:
            self._in_flight -= 1
            checkpoint.left -= 1
            if error is not None:
                checkpoint.failed.append(request)
            last = checkpoint.left == 0
        if last:
            checkpoint.loop.call_soon_threadsafe(_resolve, checkpoint.done, checkpoint.failed)
        self._pump()


def _resolve(done: asyncio.Future[list[Any]], failed: list[Any]) -> None:
    if not done.done():
        done.set_result(failed)


__all__ = ["BatchWriter", "batches"]
