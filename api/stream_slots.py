"""How many mailbox streams, SSE streams and long polls one identity may hold open at once.

Each open stream holds a socket, a task and a Cassandra read per wake-up; one identity held
200 (issue 19). The cap is per API process: a client's streams spread over N replicas get N
times the cap, which bounds the cost per replica, the thing the cap protects. A request over
the cap is answered 429 with `Retry-After` before the stream opens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import ApiError

# A phone, a desktop and a Connector each with a stream and a long poll fit easily.
MAX_STREAMS_PER_IDENTITY = 10
TOO_MANY = "error.platform.tooManyRequests"


class StreamSlots:
    def __init__(self, per_identity: int = MAX_STREAMS_PER_IDENTITY) -> None:
        self.per_identity = per_identity
        self._open: dict[str, int] = {}

    def take(self, address: str) -> None:
        """Count one more open stream of `address`; ApiError 429 when it has its cap."""
        if self._open.get(address, 0) >= self.per_identity:
            raise ApiError(
                429,
                TOO_MANY,
                f"at most {self.per_identity} open streams and long polls per identity",
                {"Retry-After": "5"},
            )
        self._open[address] = self._open.get(address, 0) + 1

    def give_back(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)

    @contextmanager
    def held(self, address: str) -> Iterator[None]:
        self.take(address)
        try:
            yield
        finally:
            self.give_back(address)

    def slot(self, address: str) -> Slot:
        """A taken slot that a streaming response gives back when it ends, however it ends
        (the stream's own `finally`, or the response's background task when the client
        left before the first byte): releasing twice is harmless."""
        self.take(address)
        return Slot(self, address)


class Slot:
    def __init__(self, slots: StreamSlots, address: str) -> None:
        self._slots: StreamSlots | None = slots
        self._address = address

    def release(self) -> None:
        if self._slots is not None:
            self._slots.give_back(self._address)
            self._slots = None
