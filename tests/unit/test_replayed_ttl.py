"""A row written late (a replay, a worker catching up) expires when the row written at
the event's time would have: its TTL is what is left of the retention since then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.writes import remaining_ttl

DAY = 24 * 3600
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_row_written_at_once_gets_the_whole_retention() -> None:
    assert remaining_ttl(30 * DAY, NOW, NOW) == 30 * DAY


def test_a_replayed_row_gets_what_is_left_since_its_event() -> None:
    assert remaining_ttl(30 * DAY, NOW - timedelta(days=29, hours=23), NOW) == 3600


def test_a_row_past_its_retention_gets_none() -> None:
    assert remaining_ttl(30 * DAY, NOW - timedelta(days=30), NOW) == 0
    assert remaining_ttl(30 * DAY, NOW - timedelta(days=400), NOW) == 0


def test_naive_event_times_are_utc() -> None:
    # Avro hands timestamps back without a zone.
    naive = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    assert remaining_ttl(DAY, naive, NOW) == DAY - 3600
