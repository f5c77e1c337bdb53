"""A faust-streaming app for the smoke test: counts distinct records per key in a changelog
table (a record handed over twice, as at-least-once processing may around a restart, counts
once, as our agents apply an event once).

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
seen = app.Table("seen", default=list, partitions=2)  # the record ids counted, per key
positions = GroupPositions(BOOTSTRAP, APP_ID)
recovery_watch = RecoveryWatch()


@app.timer(1.0)  # type: ignore[untyped-decorator]
async def _watch_recovery() -> None:
    await refetch_lost_changelog_records(app, recovery_watch)


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types async receivers too narrowly
async def _close_positions(sender: Any, *_: Any, signal: Any, **__: Any) -> None:
    await positions.close()


@app.agent(source)
async def count(stream: Any) -> None:
    async for raw_key, raw_value in gap_free(app, positions, stream):
        key, record_id = json.loads(raw_key or b"null"), json.loads(raw_value or b"null")
        if record_id in seen[key]:
            continue
        seen[key] = [*seen[key], record_id]
        await sink.send(key=key, value=str(len(seen[key])).encode())
