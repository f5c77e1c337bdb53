"""How `backbone api` runs uvicorn: timeouts and a connection cap against slow clients.

A client that sent its header one line every 5 s held a connection for as long as it
liked, an idle socket stayed open, and nothing capped the number of connections (issue 19).
uvicorn's keep-alive timeout only runs *between* requests and stops at the first byte of
the next one, so a header trickled byte by byte was never timed out. Here:

- `HEADER_TIMEOUT_S`: a request's header must be complete this long after the connection
  opens (or, on a kept-alive connection, after the keep-alive wait starts, plus that
  wait); else the connection is closed. Covers an idle new socket too.
- `KEEP_ALIVE_S`: an idle kept-alive connection closes after this (longer than a client
  pool's or load balancer's idle timeout, often 60 s: with uvicorn's 5 s a client reusing
  a connection just as the server closes it gets a read error on a POST it cannot safely
  retry, seen in the benchmark).
- `MAX_CONNECTIONS`: beyond this many open connections (streams included) uvicorn answers
  503 at once instead of taking more.

A body that is read slowly is bounded by the request's own limits (api/observe.py) and the
client's window; streams end with their token (api/routers/mailbox.py).

The event loop is uvloop and the HTTP parser httptools (llhttp) rather than asyncio's own
loop and the pure-Python h11: py-spy on the API under `bench.delivery_latency
--respond-async` found a quarter of its CPU in the loop's bookkeeping and in h11's parsing
and writing (issue 17). h11 stays for a machine without them (`BACKBONE_API_HTTP=h11`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = float(os.environ.get("BACKBONE_API_HEADER_TIMEOUT", "10"))
KEEP_ALIVE_S = 75
MAX_CONNECTIONS = int(os.environ.get("BACKBONE_API_MAX_CONNECTIONS", "2000"))


class HeaderTimeout:
    """A deadline for each request's header, on top of either of uvicorn's HTTP protocols
    (both set `cycle` once a request's header is parsed, within `data_received`)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive: int
    cycle: Any
    _header_deadline: asyncio.TimerHandle | None = None
    _cycle_seen: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm(HEADER_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not None and self.cycle is not self._cycle_seen:
            self._cycle_seen = self.cycle  # a request's header is complete: no deadline
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm(self.timeout_keep_alive + HEADER_TIMEOUT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class HeaderTimeoutProtocol(HeaderTimeout, HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with a deadline for each request's header."""


class HeaderTimeoutH11Protocol(HeaderTimeout, H11Protocol):  # type: ignore[misc]
    """The same on h11 (pure Python, slower)."""


def uvicorn_options() -> dict[str, Any]:
    """The keyword arguments `backbone api` gives `uvicorn.run` for these limits."""
    h11 = os.environ.get("BACKBONE_API_HTTP") == "h11"
    return {
        "http": HeaderTimeoutH11Protocol if h11 else HeaderTimeoutProtocol,
        "loop": "asyncio" if h11 else "uvloop",
        "timeout_keep_alive": KEEP_ALIVE_S,
        "limit_concurrency": MAX_CONNECTIONS,
    }
