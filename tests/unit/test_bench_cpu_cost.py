"""CPU per message: each process's CPU time in an end-to-end phase over the messages sent."""

from __future__ import annotations

from typing import Any

from bench.cpu_cost import cpu_per_message


def _doc() -> dict[str, Any]:
    point = {"messages": 100, "seconds": 5.0}
    return {
        "end_to_end": {
            "1": {"sweep": [point, point], "latency": {"sent": 120}},
            "5": {"sweep": [point]},
        },
        "cpu_phases": [
            {"phase": "raw limits", "seconds": 3.0, "cpu_percent": {"worker": 1.0}},
            {
                "phase": "e2e 1 rcpt throughput sweep",
                "seconds": 10.0,
                "cpu_percent": {"worker": 40.0, "api": 20.0, "machine": 190.0, "other": 5.0},
            },
            {
                "phase": "e2e 1 rcpt latency at half max",
                "seconds": 8.0,
                "cpu_percent": {"api": 15.0},
            },
            {"phase": "e2e 5 rcpt warm-up", "seconds": 2.0, "cpu_percent": {"worker": 50.0}},
        ],
    }


def test_cpu_seconds_of_a_phase_are_divided_by_its_messages() -> None:
    rows = {r["phase"]: r for r in cpu_per_message(_doc())}
    sweep = rows["e2e 1 rcpt throughput sweep"]
    assert sweep["messages"] == 200
    # 40% of a core for 10 s is 4 CPU seconds, over 200 messages.
    assert sweep["ms_per_message"] == {"worker": 20.0, "api": 10.0}
    assert rows["e2e 1 rcpt latency at half max"]["ms_per_message"] == {"api": 10.0}


def test_phases_without_a_message_count_are_left_out() -> None:
    phases = [r["phase"] for r in cpu_per_message(_doc())]
    assert phases == ["e2e 1 rcpt throughput sweep", "e2e 1 rcpt latency at half max"]
    assert cpu_per_message({"cpu_phases": []}) == []
