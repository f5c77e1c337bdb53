"""Recipients' open mailbox streams, and when each message arrived on each of them.

Every recipient holds `GET /api/v2/Mailbox` with `Accept: text/event-stream` open, as an
app or a Connector does, from the last index the benchmark saw for it. For every
`MessageReceived` entry the arrival time (`time.perf_counter()`) is kept per message id
and recipient, whether or not a sender has registered the message yet: a stream can be
faster than the sender's handling of its 201.

Parsing is kept cheap on purpose (a regular expression for the message id instead of
decoding the JSON): the load generator shares the 2 cores with what it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict

import httpx

from bench.parties import Clients, Party

_MESSAGE_ID = re.compile(rb'"messageId":"(MSG[A-Za-z0-9]+)"')


class MailboxStreams:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.arrivals: dict[str, dict[str, float]] = defaultdict(dict)  # message -> address
        self.expected: dict[str, int] = {}  # message -> how many recipients
        self.reconnects = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._open: dict[str, asyncio.Event] = {}

    async def open(self, parties: list[Party], timeout_s: float = 30.0) -> None:
        """Start a stream per party and wait until every one has answered."""
        for party in parties:
            self._open[party.address] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._follow(party)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._open.values())), timeout_s)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def expect(self, message_id: str, recipients: int) -> None:
        self.expected[message_id] = recipients

    def outstanding(self) -> int:
        return sum(1 for m, n in self.expected.items() if len(self.arrivals.get(m, {})) < n)

    def reset(self) -> None:
        """Forget what was expected and seen (between phases; streams stay open)."""
        self.arrivals.clear()
        self.expected.clear()

    async def wait_all(self, timeout_s: float) -> bool:
        """Wait until every expected message reached all its recipients."""
        deadline = time.monotonic() + timeout_s
        while self.outstanding():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def last_arrival(self) -> float:
        times = [t for m in self.expected for t in self.arrivals.get(m, {}).values()]
        return max(times) if times else time.perf_counter()

    async def _follow(self, party: Party) -> None:
        http = self.clients.of(party)
        while True:
            headers = {
                **party.headers,
                "Accept": "text/event-stream",
                "Last-Event-ID": str(party.last_index),
            }
            try:
                # Read timeout off: a quiet stream only sends a keep-alive every 15 s.
                timeout = httpx.Timeout(30.0, read=None)
                async with http.stream(
                    "GET", "/api/v2/Mailbox", headers=headers, timeout=timeout
                ) as stream:
                    stream.raise_for_status()
                    self._open[party.address].set()
                    await self._read(party, stream)
            except (httpx.HTTPError, OSError):
                # A dropped stream resumes from the last index seen, as a client would.
                self.reconnects += 1
                await asyncio.sleep(0.2)

    async def _read(self, party: Party, stream: httpx.Response) -> None:
        event = b""
        async for line in stream.aiter_lines():
            raw = line.encode()
            if raw.startswith(b"id: "):
                party.last_index = int(raw[4:])
            elif raw.startswith(b"event: "):
                event = raw[7:]
            elif raw.startswith(b"data: ") and event == b"MessageReceived":
                now = time.perf_counter()
                found = _MESSAGE_ID.search(raw)
                if found:
                    self.arrivals[found.group(1).decode()][party.address] = now
