"""Wakes the API's open mailbox streams when the sequencer has numbered new entries.

Every API process reads all partitions of `mailbox-sequenced` from its end (no consumer
group: each process needs every notice). A notice says "identity key K now has entries up
to index N"; waiting streams of K wake up and read the new rows from Cassandra.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.topic_tail import TopicTail


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

    def _notice(self, record: Any) -> None:
        if record.key is None:
            return
        event = self._events.pop(record.key.decode(), None)
        if event is not None:
            event.set()
