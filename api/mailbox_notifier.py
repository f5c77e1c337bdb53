"""Wakes the API's open mailbox streams when the sequencer has numbered new entries.

Every API process reads all partitions of `mailbox-sequenced` from its end (no consumer
group: each process needs every notice). A notice says "identity key K now has entries up
to index N"; waiting streams of K wake up and read the new rows from Cassandra.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger("backbone.api.mailbox")


class MailboxNotifier:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._events: dict[str, asyncio.Event] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        cluster = await self._consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist: run provisioning")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer:
            await self._consumer.stop()

    def event_for(self, identity_key: str) -> asyncio.Event:
        """An event that is set at the next notice for this identity. Take it *before*
        reading Cassandra, so a notice in between is not missed; after a notice a new one
        is handed out."""
        return self._events.setdefault(identity_key, asyncio.Event())

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("reading mailbox notices failed: %s", type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for record in records:
                    if record.key is None:
                        continue
                    event = self._events.pop(record.key.decode(), None)
                    if event is not None:
                        event.set()
