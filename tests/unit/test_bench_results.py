"""The results document: its JSON shape, and that the report renders any partial run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, results


def _sweep_point(concurrency: int, per_s: float) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "messages": 100,
        "seconds": 10.0,
        "messages_per_s": per_s,
        "recipient_entries_per_s": per_s,
        "mailbox_entries_per_s": 2 * per_s,
        "send_seconds": 9.0,
        "errors": {"503": 1},
        "undelivered": 0,
    }


def _complete() -> dict[str, Any]:
    doc = results.new_document({"quick": True, "workers": 1, "apis": 1})
    latency = {"n": 10, "median_ms": 20.0, "p99_ms": 90.0, "min_ms": 5.0, "max_ms": 95.0}
    best = _sweep_point(16, 30.0)
    doc["raw"] = {
        "kafka": {
            "records": 10,
            "record_bytes": 1900,
            "produce_per_s": 1.0,
            "produce_consume_per_s": 1.0,
            "mib_per_s": 1.0,
            "latency": latency,
            "latency_rate_per_s": 200.0,
        },
        "cassandra": {
            "rows": 10,
            "concurrency": 128,
            "inserts_per_s": 2.0,
            "read_rows_per_s": 3.0,
            "row_payload_bytes": 1600,
        },
        "pipeline": {"records": 10, "records_per_s": 100.0, "seconds": 0.1},
    }
    doc["end_to_end"]["1"] = {
        "recipients": 1,
        "sweep": [_sweep_point(4, 20.0), best],
        "max": best,
        "latency": {
            "rate_per_s": 15.0,
            "seconds": 8.0,
            "sent": 120,
            "ok": 120,
            "errors": {},
            "lost": 0,
            "scheduler_lag_max_ms": 1.0,
            "send_to_stream": latency,
            "created_to_stream": latency,
            "send_to_201": latency,
        },
    }
    doc["catch_up"] = {
        "entries": 10,
        "source": "log",
        "source_detail": "synthetic",
        "produce_seconds": 1.0,
        "sequenced_per_s": 5.0,
        "paging": {"entries": 10, "seconds": 1.0, "entries_per_s": 10.0, "gaps": 0},
        "sse": {"entries": 10, "seconds": 1.0, "entries_per_s": 10.0},
    }
    doc["memory"] = {"api": {"pids": [1], "peak_rss_mib": 100.0, "hwm_mib": 110.0}}
    doc["cpu_phases"] = [
        {
            "phase": "raw limits",
            "seconds": 3.0,
            "cpu_percent": {"api": 10.0, "machine": 150.0, "other": 140.0},
            "peak_rss_mib": {"api": 100.0},
        }
    ]
    return results.finish(doc)


def test_a_finished_document_has_the_documented_shape() -> None:
    doc = _complete()
    assert results.problems(doc) == []
    assert "_started" not in doc and doc["duration_s"] >= 0
    assert json.loads(json.dumps(doc)) == doc  # plain JSON all the way down
    assert {r["name"] for r in doc["targets"]} >= {"API peak RSS under load"}


def test_shape_problems_are_named() -> None:
    doc = _complete()
    del doc["targets"]
    doc["end_to_end"]["x"] = {}
    doc["ratios"].append({"name": "odd"})
    found = results.problems(doc)
    assert "missing key 'targets'" in found
    assert any("end_to_end['x']" in p for p in found)
    assert any(p.startswith("ratio row") for p in found)


def test_the_report_renders_a_complete_and_an_empty_run() -> None:
    text = report.render(_complete())
    for heading in (
        "RAW LIMITS",
        "BACKBONE END TO END",
        "SYNC CATCH-UP",
        "RATIOS",
        "MEMORY",
        "TARGETS",
    ):
        assert heading in text
    assert "met" in text
    empty = report.render(results.finish(results.new_document({})))
    assert "raw limits: not measured" in empty and "not measured" in empty


def test_the_default_path_is_timestamped_under_bench_results() -> None:
    path = results.default_path(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert path == Path("bench-results") / "20260102T030405Z.json"


def test_written_results_read_back(tmp_path: Path) -> None:
    doc = _complete()
    results.write(doc, tmp_path / "sub" / "run.json")
    assert json.loads((tmp_path / "sub" / "run.json").read_text()) == doc


def test_table_aligns_columns() -> None:
    text = report.table(["name", "value"], [["a", 1234.5], ["longer name", None]])
    lines = text.splitlines()
    assert lines[2].endswith("1,234.5") and lines[3].endswith("-")
    assert len({len(line) for line in lines}) == 1
