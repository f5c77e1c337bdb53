"""A faust-streaming app for the smoke test: counts records per key in a changelog table.

Run as `faust -A tests.integration.faust_counter worker`; configured by environment so the
test can give it this run's topic prefix and a fresh data directory on each start.

It carries the same two repairs our workers do (streams/faust_fixes.py and
streams/recovery_watch.py): without them faust's rebalance after a restart can drop the
first record of a partition, and the test then reads [6, 7] instead of [6, 7, 8], which is
faust's bug, not what the smoke test is about (a table restored from its changelog).
"""

from __future__ import annotations

import json
import os
from typing import Any

import faust

from streams.faust_fixes import GroupPositions, gap_free
from streams.recovery_watch import RecoveryWatch, refetch_lost_changelog_records

PREFIX = os.environ["COUNTER_TOPIC_PREFIX"]
BOOTSTRAP = os.environ["COUNTER_BOOTSTRAP"]
APP_ID = f"{PREFIX}counter"

app = faust.App(
    APP_ID,
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",  # nothing on disk: after a restart the table can only come from Kafka
    datadir=os.environ["COUNTER_DATADIR"],
    topic_partitions=2,
    web_enabled=False,
    producer_acks=-1,
)
# Raw bytes in: records the stream skipped come back from the log undecoded, like ours.
source = app.topic(
    f"{PREFIX}counter-in",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
sink = app.topic(f"{PREFIX}counter-out", key_type=str, value_type=bytes, value_serializer="raw")
counts = app.Table("counts", default=int, partitions=2)
positions = GroupPositions(BOOTSTRAP, APP_ID)
recovery_watch = RecoveryWatch()


@app.timer(1.0)  # type: ignore[untyped-decorator]
async def _watch_recovery() -> None:
    await refetch_lost_changelog_records(app, recovery_watch)


@app.agent(source)
async def count(stream: Any) -> None:
    async for raw_key, _ in gap_free(app, positions, stream):
        key = json.loads(raw_key or b"null")
        counts[key] += 1
        await sink.send(key=key, value=str(counts[key]).encode())
