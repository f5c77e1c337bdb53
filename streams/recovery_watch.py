"""A table recovery that waits for changelog records faust already fetched and dropped.

After a worker takes partitions over, faust rebuilds their decider tables from the
changelog topics and starts their agents only once it has read every changelog partition
to its end. The kill test caught that wait lasting for good (4 runs in 111): the worker
took no more commands, so every send answered 503. The worker's event loop ran on, no
partition was paused, nothing waited in the changelog queue, and Kafka's fetch position of
each changelog partition the recovery waited for stood at the end of the log, while the
recovery had received none of those partitions' records. So the records had been fetched
and dropped on their way (faust drops fetched records in several places around a
rebalance; see streams/faust_fixes.py for the same on the agents' streams), and nothing
would fetch them again.

`RecoveryWatch` finds that state (no progress for a few seconds, changelog queue empty,
fetch position past what the recovery got) and seeks those partitions back to the first
record the recovery lacks, so that they are fetched again. A recovery that is merely slow
is left alone: its fetch position has not passed its offsets, or its offsets move.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from time import monotonic
from typing import Any

import faust
from faust.types import TP

from streams.metrics import RECOVERY_REFETCHES

log = logging.getLogger("backbone.streams")

PATIENCE_S = 5.0  # a healthy recovery of our changelogs takes well under a second


class RecoveryWatch:
    """Whether a recovery is stuck, and on which partitions records were lost."""

    def __init__(self, patience_s: float = PATIENCE_S) -> None:
        self.patience_s = patience_s
        self._offsets: dict[TP, int] = {}
        self._since = 0.0

    def stuck(self, offsets: Mapping[TP, int], now: float) -> bool:
        """Whether the recovery's offsets (last record received per partition it still
        waits for) have stayed the same for `patience_s`."""
        if dict(offsets) != self._offsets:
            self._offsets = dict(offsets)
            self._since = now
            return False
        return now - self._since >= self.patience_s

    def reset(self) -> None:
        self._offsets = {}

    @staticmethod
    def lost(offsets: Mapping[TP, int], positions: Mapping[TP, int | None]) -> dict[TP, int]:
        """Per partition whose fetch position has passed records the recovery never
        received: the first such offset (the recovery's offset is -1 before any)."""
        return {
            tp: received + 1
            for tp, received in offsets.items()
            if (position := positions.get(tp)) is not None and position > received + 1
        }


async def refetch_lost_changelog_records(app: faust.App, watch: RecoveryWatch) -> None:
    """One look at the recovery: when it is stuck on records lost in flight, fetch them
    again. Called every second by the worker."""
    tables: Any = app.tables  # the manager's recovery and queue are not in faust's types
    recovery = tables.recovery
    remaining = recovery.active_remaining()
    waiting = {tp: recovery.active_offsets[tp] for tp, n in remaining.items() if n > 0}
    if not recovery.in_recovery or not waiting or not tables.changelog_queue.empty():
        watch.reset()
        return
    if not watch.stuck(waiting, monotonic()):
        return
    consumer: Any = app.consumer
    positions = {tp: await consumer.position(tp) for tp in waiting}
    lost = watch.lost(waiting, positions)
    if not lost:
        return
    for tp, first in sorted(lost.items()):
        RECOVERY_REFETCHES.labels(tp.topic).inc()
        log.warning(
            "table recovery stuck on changelog records fetched but never delivered; "
            "fetching them again",
            extra={
                "topic": tp.topic,
                "partition": tp.partition,
                "first_offset": first,
                "fetch_position": positions[tp],
            },
        )
    await consumer.seek_wait(lost)
    watch.reset()
