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


def _sweep_cpu(percent: dict[str, float]) -> dict[str, Any]:
    # 100 messages in 2 s: 50 % of a core is 10 ms per message.
    return {
        "cpu_phases": [
            {"phase": "e2e 1 rcpt throughput sweep", "seconds": 2.0, "cpu_percent": percent}
        ],
    }


def test_write_path_targets_read_ratios_cpu_and_answer_latency() -> None:
    doc = _doc()
    doc["end_to_end"]["1"]["sweep"] = [{"messages": 60}, {"messages": 40}]
    doc["end_to_end"]["1"]["latency"]["send_to_201"] = {"median_ms": 9.5}
    doc["end_to_end"]["5"] = {
        "max": {"messages_per_s": 40.0, "mailbox_entries_per_s": 240.0},
        "latency": {"send_to_201": {"median_ms": 12.0}},
    }
    percents = {"worker": 15.0, "api": 10.0, "kafka": 5.0, "cassandra": 10.0, "bench": 90.0}
    doc.update(_sweep_cpu(percents))
    rows = _by_name(doc)
    assert rows["write path: messages/s (1 rcpt) / raw pipeline records/s"]["value"] == 0.5
    assert rows["write path: mailbox entries/s (5 rcpt) / raw pipeline records/s"]["met"] is False
    cpu = rows["write path: stack CPU per message (1 rcpt)"]
    assert cpu["value"] == 8.0 and cpu["met"] is True  # the load generator's 18 ms not counted
    assert rows["write path: send -> answer median at half max (1 rcpt)"]["met"] is True
    assert rows["write path: send -> answer median at half max (5 rcpt)"]["met"] is False


def test_stack_cpu_is_not_measured_when_a_process_was_not_sampled() -> None:
    doc = _doc()
    doc["end_to_end"]["1"]["sweep"] = [{"messages": 100}]
    doc.update(_sweep_cpu({"worker": 15.0, "api": 10.0, "kafka": 5.0}))
    row = _by_name(doc)["write path: stack CPU per message (1 rcpt)"]
    assert row["value"] is None and row["met"] is None
