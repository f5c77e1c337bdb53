"""Mean stage lags from two scrapes of the worker's Prometheus histograms."""

from __future__ import annotations

from bench.worker_metrics import between, parse

BEFORE = """
# HELP backbone_decider_lag_seconds From a command's append to its decision
backbone_decider_lag_seconds_bucket{command="SendMessage",le="0.005"} 1.0
backbone_decider_lag_seconds_count{command="SendMessage"} 10.0
backbone_decider_lag_seconds_sum{command="SendMessage"} 0.5
backbone_projection_lag_seconds_count{event="MessageSent"} 10.0
backbone_projection_lag_seconds_sum{event="MessageSent"} 1.0
backbone_decider_commands_total{aggregate="message",command="SendMessage"} 10.0
"""
AFTER = """
backbone_decider_lag_seconds_count{command="SendMessage"} 30.0
backbone_decider_lag_seconds_sum{command="SendMessage"} 1.5
backbone_projection_lag_seconds_count{event="MessageSent"} 30.0
backbone_projection_lag_seconds_sum{event="MessageSent"} 5.0
backbone_projection_lag_seconds_count{event="IdentityCreated"} 3.0
backbone_projection_lag_seconds_sum{event="IdentityCreated"} 0.03
"""


def test_parse_keeps_only_sums_and_counts_of_the_lag_histograms() -> None:
    assert parse(BEFORE) == {
        "decider SendMessage": (0.5, 10.0),
        "projection MessageSent": (1.0, 10.0),
    }


def test_between_gives_the_mean_of_what_happened_in_between() -> None:
    lags = between(parse(BEFORE), parse(AFTER))
    assert lags["decider SendMessage"] == {"count": 20, "mean_ms": 50.0}
    assert lags["projection MessageSent"] == {"count": 20, "mean_ms": 200.0}
    assert lags["projection IdentityCreated"] == {"count": 3, "mean_ms": 10.0}


def test_a_series_without_new_records_is_left_out() -> None:
    assert between(parse(AFTER), parse(AFTER)) == {}
