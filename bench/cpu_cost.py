"""CPU per message: where a message's cost goes, process by process.

Derived from a results document (`bench/results.py`): for each end-to-end phase with a
known message count, the CPU seconds each process used in that phase divided by the
messages sent in it. The machine's cores are the limit of the throughput figures, so this
table says which process a gain has to come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

PROCESSES = ("worker", "api", "kafka", "cassandra", "bench")


class CostRow(TypedDict):
    phase: str
    messages: int
    ms_per_message: dict[str, float]


def _messages_in(phase: str, end_to_end: Mapping[str, Any]) -> int | None:
    for n, figures in end_to_end.items():
        if phase == f"e2e {n} rcpt throughput sweep":
            return sum(int(point["messages"]) for point in figures.get("sweep", []))
        if phase == f"e2e {n} rcpt latency at half max" and figures.get("latency"):
            return int(figures["latency"]["sent"])
    return None


def cpu_per_message(results: Mapping[str, Any]) -> list[CostRow]:
    rows: list[CostRow] = []
    end_to_end = results.get("end_to_end") or {}
    for phase in results.get("cpu_phases") or []:
        messages = _messages_in(phase["phase"], end_to_end)
        if not messages:
            continue
        cpu_s = {
            k: phase["cpu_percent"][k] / 100 * phase["seconds"]
            for k in PROCESSES
            if phase["cpu_percent"].get(k) is not None
        }
        rows.append(
            CostRow(
                phase=phase["phase"],
                messages=messages,
                ms_per_message={k: round(s * 1000 / messages, 2) for k, s in cpu_s.items()},
            )
        )
    return rows
