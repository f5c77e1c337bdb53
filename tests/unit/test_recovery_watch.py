"""A table recovery stuck on changelog records faust fetched and dropped: found, and
those partitions fetched again; a recovery that is only slow is left alone.

faust's recovery and consumer are stood in for by small fakes holding the state the watch
reads (offsets, highwaters, fetch positions); the kill test covers the real thing."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from streams.metrics import RECOVERY_REFETCHES
from streams.recovery_watch import RecoveryWatch, refetch_lost_changelog_records

MESSAGES = TP("p.workers-messages-changelog", 3)
PAIRS = TP("p.workers-pairs-changelog", 0)


def test_a_recovery_is_stuck_only_once_its_offsets_have_not_moved_for_the_patience() -> None:
    watch = RecoveryWatch(patience_s=5)
    assert not watch.stuck({MESSAGES: -1}, now=100.0)
    assert not watch.stuck({MESSAGES: -1}, now=104.9)
    assert not watch.stuck({MESSAGES: 3}, now=105.0)  # progress: the wait starts again
    assert not watch.stuck({MESSAGES: 3}, now=109.0)
    assert watch.stuck({MESSAGES: 3}, now=110.0)


def test_lost_records_are_those_behind_a_fetch_position_past_what_the_recovery_got() -> None:
    offsets = {MESSAGES: -1, PAIRS: 4}
    # The fetch stands at the log's end (14) with nothing received: 0 onwards was lost.
    # PAIRS' position is the next record the recovery expects: it is only waiting.
    assert RecoveryWatch.lost(offsets, {MESSAGES: 14, PAIRS: 5}) == {MESSAGES: 0}
    assert RecoveryWatch.lost(offsets, {MESSAGES: 0, PAIRS: None}) == {}


@dataclass
class _Recovery:
    highwaters: dict[TP, int]
    active_offsets: dict[TP, int]
    in_recovery: bool = True

    def active_remaining(self) -> Counter[TP]:
        return Counter({tp: hw - self.active_offsets[tp] for tp, hw in self.highwaters.items()})


@dataclass
class _Consumer:
    fetch_positions: dict[TP, int]
    seeks: list[dict[TP, int]] = field(default_factory=list)

    async def position(self, tp: TP) -> int:
        return self.fetch_positions[tp]

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.append(dict(partitions))


@dataclass
class _Tables:
    recovery: _Recovery
    changelog_queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@dataclass
class _App:
    tables: _Tables
    consumer: _Consumer


def _stuck_app() -> _App:
    # The state the kill test's stalled worker was in: messages 3 has records 0 to 13, none
    # received, fetched to the end; pairs 0 has its records 0 to 5, 0 to 4 received.
    recovery = _Recovery({MESSAGES: 13, PAIRS: 5}, {MESSAGES: -1, PAIRS: 4})
    return _App(_Tables(recovery), _Consumer({MESSAGES: 14, PAIRS: 5}))


async def _look(app: _App, watch: RecoveryWatch, times: int) -> None:
    for _ in range(times):
        await refetch_lost_changelog_records(app, watch)  # type: ignore[arg-type]


async def test_a_stuck_recovery_fetches_the_lost_partition_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, watch = _stuck_app(), RecoveryWatch(patience_s=0)
    before = RECOVERY_REFETCHES.labels(MESSAGES.topic)._value.get()
    with caplog.at_level(logging.WARNING, logger="backbone.streams"):
        await _look(app, watch, 2)  # the first look only notes the offsets
    assert app.consumer.seeks == [{MESSAGES: 0}]
    assert RECOVERY_REFETCHES.labels(MESSAGES.topic)._value.get() == before + 1
    [report] = caplog.records
    assert (report.partition, report.first_offset, report.fetch_position) == (3, 0, 14)  # type: ignore[attr-defined]


async def test_a_recovery_that_is_moving_waiting_or_applying_is_left_alone() -> None:
    # Within the patience: no seek yet.
    app = _stuck_app()
    await _look(app, RecoveryWatch(patience_s=60), 3)
    assert app.consumer.seeks == []
    # Fetched records still wait in the changelog queue: they are on their way.
    app = _stuck_app()
    app.tables.changelog_queue.put_nowait(object())
    await _look(app, RecoveryWatch(patience_s=0), 3)
    assert app.consumer.seeks == []
    # The fetch has not passed what the recovery got: Kafka has not answered yet.
    app = _stuck_app()
    app.consumer.fetch_positions[MESSAGES] = 0
    await _look(app, RecoveryWatch(patience_s=0), 3)
    assert app.consumer.seeks == []
    # Not recovering.
    app = _stuck_app()
    app.tables.recovery.in_recovery = False
    await _look(app, RecoveryWatch(patience_s=0), 3)
    assert app.consumer.seeks == []
