"""The benchmark's pure statistics: percentiles, latency summaries, rates."""

from __future__ import annotations

import pytest

from bench.stats import percentile, rate, summarize_ms


def test_percentile_interpolates_between_ranks() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1 .. 100
    assert percentile(samples, 0.0) == 1.0
    assert percentile(samples, 1.0) == 100.0
    assert percentile(samples, 0.5) == pytest.approx(50.5)
    assert percentile(samples, 0.99) == pytest.approx(99.01)


def test_percentile_does_not_depend_on_input_order() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == percentile([1.0, 3.0, 5.0], 0.5) == 3.0


def test_percentile_of_one_sample_is_that_sample() -> None:
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_percentile_rejects_a_quantile_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_summary_is_in_milliseconds() -> None:
    summary = summarize_ms([0.010, 0.020, 0.030])
    assert summary == {"n": 3, "median_ms": 20.0, "p99_ms": 29.8, "min_ms": 10.0, "max_ms": 30.0}


def test_rate_of_no_time_is_zero() -> None:
    assert rate(10, 0.0) == 0.0
    assert rate(10, 4.0) == 2.5
