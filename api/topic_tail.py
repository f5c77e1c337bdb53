"""Every partition of one topic, read from where it ended when this API process started.

No consumer group: each API process needs every record (the replies to its requests, the
mailbox notices that wake its streams, the other replicas' failed password checks). Each
record is handed to `handle`; a broker that is away only delays the reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from backbone.connections import kafka_client_kwargs

log = logging.getLogger("backbone.api")


class TopicTail:
    def __init__(
        self, bootstrap: str, topic: str, handle: Callable[[Any], None], reading: str
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.handle = handle  # called with each aiokafka ConsumerRecord, in order
        self.reading = reading  # what is read, for the log: "replies", "mailbox notices"
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # fetch_max_wait_ms stays at its default (500 ms): the broker answers a fetch as soon
        # as a record arrives, so a long wait adds no latency, and a short one made idle
        # processes poll the broker a hundred times a second.
        self._consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self.bootstrap), enable_auto_commit=False
        )
        await self._consumer.start()
        cluster = await self._consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist: run provisioning")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is sent
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.warning("reading %s failed: %s", self.reading, type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for record in records:
                    self.handle(record)
