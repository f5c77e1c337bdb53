"""Wakes the API's open mailbox streams when the sequencer has numbered new entries.

Every API process reads all partitions of `mailbox-sequenced` from its end (no consumer
group: each process needs every notice). A notice says "identity key K now has entries up
to index N"; waiting streams of K wake up and read the new rows from Cassandra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from api.topic_tail import TopicTail

T = TypeVar("T")


class MailboxNotifier:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._tail = TopicTail(bootstrap, topic, self._notice, "mailbox notices")

    async def start(self) -> None:
        await self._tail.start()

    async def stop(self) -> None:
        await self._tail.stop()

    def event_for(self, identity_key: str) -> asyncio.Event:
        """An event that is set at the next notice for this identity. Take it *before*
        reading Cassandra, so a notice in between is not missed; after a notice a new one
        is handed out."""
        return self._events.setdefault(identity_key, asyncio.Event())

    async def until(
        self, identity_key: str, probe: Callable[[], Awaitable[T | None]], timeout_s: float
    ) -> tuple[T | None, bool]:
        """`probe()`'s first answer that is not None, asked again at each notice for this
        identity until `timeout_s` has passed (then its last answer), and whether it waited.
        For a write the identity learns of through its mailbox: its notice comes after the
        write's rows, so the probe that follows it sees them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout_s)
        waited = False
        while True:
            wake = self.event_for(identity_key)  # before the probe: a notice in between counts
            found = await probe()
            left = deadline - loop.time()
            if found is not None or left <= 0:
                return found, waited
            waited = True
            try:
                await asyncio.wait_for(wake.wait(), timeout=left)
            except TimeoutError:
                return await probe(), waited

    def _notice(self, record: Any) -> None:
        if record.key is None:
            return
        event = self._events.pop(record.key.decode(), None)
        if event is not None:
            event.set()
