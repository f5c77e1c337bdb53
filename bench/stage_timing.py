"""Where a message's time goes: when each stage's Kafka record was created, per send.

    python -m bench.stage_timing [--url http://127.0.0.1:8080] [-n 30] [--gap 0.4]

Sends `-n` 1 KiB messages one at a time (a pause of `--gap` seconds after each, so
nothing else is in flight) between a new sender and recipient, while reading the
backbone's topics from their ends. For each topic it prints, in milliseconds after the
send started, when its records for that message were created (Kafka's CreateTime, set by
the producing process): the command, the events (the MessageSent and the Reply), the
mailbox entries (sender and recipient), the replies and the sequencer's notices, and when
the 201 arrived. The gaps between rows are the stages: API, decider, projector, sequencer.
Records are attributed to a send by time, so run it on an otherwise idle stack.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import time

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from backbone.connections import kafka_client_kwargs
from backbone.settings import BackboneSettings
from bench.context import add_stack_arguments, secret_of
from bench.delivery_latency import related_pair
from bench.results import machine_line
from connector.backbone_client import BackboneClient
from store.topics import TopicNames

BODY = base64.b64encode(os.urandom(1024)).decode()


class TopicClock:
    """The creation times of the records appended to some topics from now on."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.seen: list[tuple[str, float]] = []  # (topic, created at in epoch ms)
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self.bootstrap), enable_auto_commit=False
        )
        await consumer.start()
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(t, p)
            for t in self.topics
            for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                self.seen.extend((tp.topic, float(r.timestamp)) for r in records)

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self._consumer:
            await self._consumer.stop()


async def run(url: str, client_id: str, secret: str, n: int, gap_s: float) -> None:
    settings = BackboneSettings.from_env()
    names = TopicNames(settings.cluster.topic_prefix)
    topics = [
        names.message_commands,
        names.events,
        names.mailbox_entries,
        names.replies,
        names.mailbox_sequenced,
    ]
    clock = TopicClock(settings.cluster.kafka_bootstrap, topics)
    await clock.start()
    rows: list[dict[str, float]] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            client = BackboneClient(http, client_id, secret)
            sender, recipient_address, _ = await related_pair(http, client)
            message = {
                "recipients": [{"address": recipient_address, "encryptedKey": "a2V5"}],
                "body": BODY,
            }
            await asyncio.sleep(gap_s)
            for _ in range(n):
                clock.seen.clear()
                started = time.time() * 1000
                answer = await http.post("/api/v2/Messages", json=message, headers=sender)
                row = {"201": time.time() * 1000 - started}
                answer.raise_for_status()
                await asyncio.sleep(gap_s)
                for topic, created in sorted(clock.seen, key=lambda seen: seen[1]):
                    name = topic.removeprefix(settings.cluster.topic_prefix)
                    label, k = name, 1
                    while label in row:
                        k += 1
                        label = f"{name} #{k}"
                    row[label] = created - started
                rows.append(row)
    finally:
        await clock.stop()
    labels = sorted(
        {k for r in rows for k in r}, key=lambda k: statistics.median(r[k] for r in rows if k in r)
    )
    print(
        f"{machine_line()}; api {url}; {n} sends, one at a time;"
        " ms after the send started (median, min, max)"
    )
    for label in labels:
        values = [r[label] for r in rows if label in r]
        print(
            f"  {label:<24} n={len(values):<4} {statistics.median(values):7.1f}"
            f" {min(values):7.1f} {max(values):7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.4, help="seconds between sends")
    args = parser.parse_args()
    secret = secret_of(args)
    asyncio.run(run(args.url, args.client_id, secret, args.n, args.gap))


if __name__ == "__main__":
    main()
