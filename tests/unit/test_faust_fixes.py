"""Which offsets a stream jumped over: the records that must be read from the log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import generate_latest

from streams.faust_fixes import GapFree, SkipWatch
from streams.metrics import SKIPPED_RECORDS

EVENTS = TP("p.events", 0)


def _skipped(topic: str) -> float:
    return SKIPPED_RECORDS.labels(topic)._value.get()  # type: ignore[no-any-return]


def test_offsets_that_follow_each_other_or_go_back_skip_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = SkipWatch()
    before = _skipped(EVENTS.topic)
    with caplog.at_level(logging.WARNING, logger="backbone.streams"):
        # 11 and 12 again after a seek back: processed twice, which every agent absorbs.
        assert [watch.saw(EVENTS, o) for o in (10, 11, 12, 11, 12, 13)] == [None] * 6
    assert not caplog.records
    assert _skipped(EVENTS.topic) == before


def test_a_jump_forward_names_the_offsets_never_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = SkipWatch()
    before = _skipped(EVENTS.topic)
    with caplog.at_level(logging.WARNING, logger="backbone.streams"):
        assert [watch.saw(EVENTS, o) for o in (62, 63, 66, 67)] == [None, None, (64, 65), None]
    [report] = caplog.records
    assert (report.partition, report.first_offset, report.last_offset) == (0, 64, 65)  # type: ignore[attr-defined]
    assert _skipped(EVENTS.topic) == before + 2


def test_an_actor_starting_past_where_the_group_resumes_skipped_the_records_before() -> None:
    watch = SkipWatch()
    watch.begin(EVENTS, 10)
    assert watch.saw(EVENTS, 12) == (10, 11)
    assert watch.saw(TP("p.events", 3), 40) is None  # a partition it was not told of


def test_an_actor_may_start_before_where_the_group_resumes() -> None:
    watch = SkipWatch()
    watch.begin(EVENTS, 10)
    assert [watch.saw(EVENTS, o) for o in (8, 9, 10, 11)] == [None] * 4  # after a crash


def test_each_partition_is_followed_on_its_own() -> None:
    watch = SkipWatch()
    other = TP("p.events", 1)
    steps = [(EVENTS, 5), (other, 90), (EVENTS, 6), (other, 91)]
    assert [watch.saw(tp, o) for tp, o in steps] == [None] * 4


def test_an_idle_partition_whose_log_runs_past_the_position_is_missing_records() -> None:
    """A 202's event has no reply behind it: on a quiet partition only the log's end offset
    reveals a record the stream jumped over."""
    watch = SkipWatch()
    watch.begin(EVENTS, 10)
    assert watch.saw(EVENTS, 10) is None
    assert watch.missing_at_end(EVENTS, 11) is None  # everything delivered
    assert watch.missing_at_end(EVENTS, 14) == (11, 13)
    assert watch.missing_at_end(EVENTS, 14) is None  # read once, not again
    assert watch.saw(EVENTS, 14) is None  # the next record follows on
    assert watch.missing_at_end(TP("p.events", 3), 99) is None  # not one of its partitions


def test_records_found_missing_on_an_idle_partition_are_counted_in_metrics() -> None:
    assert b"backbone_stream_idle_gaps_total" in generate_latest()


class _EndingStream:
    """A faust stream as an actor of a revoked partition sees it: its next read waits until
    faust ends it (faust throws StopAsyncIteration into the stream's channel)."""

    def __init__(self) -> None:
        self.enable_acks = True
        self.next_read: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def events(self) -> _EndingStream:
        return self

    def __aiter__(self) -> _EndingStream:
        return self

    async def __anext__(self) -> object:
        return await self.next_read


async def test_a_revoked_partitions_actor_ends_instead_of_crashing() -> None:
    # faust stops such an actor by ending its stream and at once cancelling its task; a
    # cancel that escaped counted as a crash, one per partition, past faust's restart limit,
    # and a worker joining the group stopped the worker already in it.
    stream = _EndingStream()
    app: Any = object()
    positions: Any = object()

    async def actor() -> list[object]:
        return [batch async for batch in GapFree(app, positions, stream).batches(16)]

    task = asyncio.create_task(actor())
    await asyncio.sleep(0)  # the actor waits for its stream's next record
    stream.next_read.set_exception(StopAsyncIteration())
    await asyncio.sleep(0)  # the read ends; the actor has not run since
    task.cancel()
    assert await task == []
