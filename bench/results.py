"""The results document of one run: what is measured, in one JSON shape for comparing runs.

Top-level keys (numbers per second unless the name says otherwise):

    schema        "backbone-bench/1"
    started_at, finished_at, duration_s
    machine       host, cpus, mem_gib, python, platform
    settings      the run's options (quick, counts, URLs, workers, apis, ...)
    raw           kafka {...}, cassandra {...}, pipeline {...}         (bench/raw_limits.py)
    end_to_end    {"1": {...}, "5": {...}}: sweep, max, latency       (bench/end_to_end.py)
    catch_up      entries, source, sequenced_per_s, paging, sse       (bench/catch_up.py)
    memory        {kind: {pids, peak_rss_mib, hwm_mib}}               (bench/memory.py)
    cpu_phases    [{phase, seconds, cpu_percent: {kind: %}}]
    cpu_per_message [{phase, messages, ms_per_message: {kind: ms}}]    (bench/cpu_cost.py)
    log_findings  warnings and errors the worker and API logged during the run
    ratios        [{name, backbone, raw, ratio}]                      (bench/targets.py)
    targets       [{name, value, unit, op, threshold, met}]
    errors        phases that failed, with the reason
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cpu_cost import cpu_per_message
from bench.targets import evaluate, ratios

SCHEMA = "backbone-bench/1"
REQUIRED = ("schema", "started_at", "machine", "settings", "memory", "ratios", "targets", "errors")


def machine() -> dict[str, Any]:
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_kib / (1 << 20), 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_line() -> str:
    """The first line a benchmark script prints, so that its figures say where they came from."""
    return (
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}"
    )


def new_document(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "_started": time.monotonic(),
        "machine": machine(),
        "settings": dict(settings),
        "end_to_end": {},
        "memory": {},
        "cpu_phases": [],
        "log_findings": {},
        "errors": [],
    }


def finish(doc: dict[str, Any]) -> dict[str, Any]:
    """Stamp the end, and derive the ratios and the target verdicts from the figures."""
    started = doc.pop("_started", None)
    doc["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if isinstance(started, float):
        doc["duration_s"] = round(time.monotonic() - started, 1)
    doc["ratios"] = ratios(doc)
    doc["targets"] = evaluate(doc)
    doc["cpu_per_message"] = cpu_per_message(doc)
    return doc


def problems(doc: Mapping[str, Any]) -> list[str]:
    """What is wrong with a document's shape (empty when it is fine)."""
    found = [f"missing key {k!r}" for k in REQUIRED if k not in doc]
    if doc.get("schema") not in (None, SCHEMA):
        found.append(f"unknown schema {doc.get('schema')!r}")
    for row in doc.get("targets", []):
        if set(row) != {"name", "value", "unit", "op", "threshold", "met"}:
            found.append(f"target row with keys {sorted(row)}")
    for row in doc.get("ratios", []):
        if set(row) != {"name", "backbone", "raw", "ratio"}:
            found.append(f"ratio row with keys {sorted(row)}")
    for n, figures in (doc.get("end_to_end") or {}).items():
        if not str(n).isdigit() or "max" not in figures or "sweep" not in figures:
            found.append(f"end_to_end[{n!r}] lacks sweep/max")
    try:
        json.dumps(doc)
    except (TypeError, ValueError) as exc:
        found.append(f"not JSON-serialisable: {exc}")
    return found


def default_path(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path("bench-results") / f"{stamp}.json"


def write(doc: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
