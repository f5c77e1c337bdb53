"""Ratios to the raw limit and the issue's targets, evaluated on a results document."""

from __future__ import annotations

from typing import Any

from bench.targets import evaluate, lookup, ratio, ratios


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "raw": {
            "kafka": {"latency": {"median_ms": 4.0}},
            "cassandra": {"read_rows_per_s": 40_000.0},
            "pipeline": {"records_per_s": 1000.0},
        },
        "end_to_end": {
            "1": {
                "max": {"messages_per_s": 500.0, "mailbox_entries_per_s": 1000.0},
                "latency": {"send_to_stream": {"median_ms": 25.0, "p99_ms": 160.0}},
            },
        },
        "catch_up": {"paging": {"entries_per_s": 25_000.0}, "sse": {"entries_per_s": 19_999.0}},
        "memory": {"api": {"peak_rss_mib": 250.0}, "worker": {"peak_rss_mib": 120.0}},
    }
    doc.update(overrides)
    return doc


def _by_name(doc: dict[str, Any]) -> dict[str, Any]:
    return {row["name"]: row for row in evaluate(doc)}


def test_lookup_finds_numbers_and_nothing_else() -> None:
    doc = {"a": {"b": 2, "c": "x", "d": True}}
    assert lookup(doc, ("a", "b")) == 2.0
    assert lookup(doc, ("a", "c")) is None
    assert lookup(doc, ("a", "d")) is None  # a bool is not a figure
    assert lookup(doc, ("a", "missing")) is None


def test_ratio_needs_both_figures_and_a_positive_raw_one() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(None, 200.0) is None
    assert ratio(50.0, None) is None
    assert ratio(50.0, 0.0) is None


def test_throughput_target_compares_messages_to_the_raw_pipeline() -> None:
    row = _by_name(_doc())["e2e messages/s (1 rcpt) / raw pipeline records/s"]
    assert row["value"] == 0.5 and row["met"] is True


def test_thresholds_are_inclusive_or_strict_as_the_issue_words_them() -> None:
    rows = _by_name(_doc())
    assert rows["latency median at half max (1 rcpt)"]["met"] is True  # 25 <= 30
    assert rows["latency p99 at half max (1 rcpt)"]["met"] is False  # 160 > 150
    assert rows["catch-up via paging"]["met"] is True
    assert rows["catch-up via sse"]["met"] is False  # 19,999 < 20,000
    assert rows["API peak RSS under load"]["met"] is False  # "under 250 MB": 250 is not
    assert rows["worker peak RSS under load"]["met"] is True


def test_a_figure_not_measured_is_neither_met_nor_failed() -> None:
    rows = _by_name(_doc(raw={}))
    throughput = rows["e2e messages/s (1 rcpt) / raw pipeline records/s"]
    assert throughput["value"] is None and throughput["met"] is None
    assert rows["latency median at half max (5 rcpt)"]["met"] is None


def test_ratios_pair_each_backbone_figure_with_its_raw_limit() -> None:
    rows = {r["name"]: r for r in ratios(_doc())}
    entries = rows["e2e mailbox entries/s (1 rcpt) : raw pipeline records/s"]
    assert (entries["backbone"], entries["raw"], entries["ratio"]) == (1000.0, 1000.0, 1.0)
    paging = rows["catch-up via paging entries/s : raw Cassandra page reads rows/s"]
    assert paging["ratio"] == 0.625
    assert rows["latency median (1 rcpt) : raw Kafka produce->consume median"]["ratio"] == 6.25
    assert rows["e2e messages/s (5 rcpt) : raw pipeline records/s"]["ratio"] is None
