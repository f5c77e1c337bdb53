"""A faust-streaming app for the smoke test: counts records per key in a changelog table.

Run as `faust -A tests.integration.faust_counter worker`; configured by environment so the
test can give it this run's topic prefix and a fresh data directory on each start.
"""

from __future__ import annotations

import os

import faust

PREFIX = os.environ["COUNTER_TOPIC_PREFIX"]

app = faust.App(
    f"{PREFIX}counter",
    broker=f"kafka://{os.environ['COUNTER_BOOTSTRAP']}",
    store="memory://",  # nothing on disk: after a restart the table can only come from Kafka
    datadir=os.environ["COUNTER_DATADIR"],
    topic_partitions=2,
    web_enabled=False,
    producer_acks=-1,
)
source = app.topic(f"{PREFIX}counter-in", key_type=str, value_type=str)
sink = app.topic(f"{PREFIX}counter-out", key_type=str, value_type=bytes, value_serializer="raw")
counts = app.Table("counts", default=int, partitions=2)


@app.agent(source)
async def count(stream: faust.StreamT[str]) -> None:
    async for key, _ in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=str(counts[key]).encode())
