"""The issue's targets and the backbone-to-raw ratios, evaluated on a results document.

Pure: takes the JSON-shaped results of one run (see `bench/results.py`) and returns rows
for the final table. A figure that was not measured in the run (a phase skipped or
failed) gives `met: None` ("not measured") rather than a guess.

The throughput target compares *messages/s* through the real API to the *records/s* of the
raw produce→consume→insert pipeline, as the issue words it ("end-to-end message
throughput at least 40% of the raw pipeline"). A message causes far more than one record
and one row inside the backbone (command, event, reply, N+1 mailbox entries, notices,
read-model rows), so the mailbox-entry ratio is printed too, for context.

The write path's own targets (rows named `write path: …`) are a second set: a tenth of the
raw pipeline for 1-recipient messages, a quarter for 5-recipient mailbox entries, at most
8 ms of CPU per message over the stack's processes, and an answer within 10 ms at half of
the maximum.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from bench.cpu_cost import cpu_per_message

MIB = 1024 * 1024


class TargetRow(TypedDict):
    name: str
    value: float | None
    unit: str
    op: str
    threshold: float
    met: bool | None


class RatioRow(TypedDict):
    name: str
    backbone: float | None
    raw: float | None
    ratio: float | None


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


def lookup(results: Mapping[str, Any], path: Sequence[str]) -> float | None:
    """The number at `path` in nested dicts, or None when any step is missing."""
    node: Any = results
    for step in path:
        if not isinstance(node, Mapping) or step not in node:
            return None
        node = node[step]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def ratio(backbone: float | None, raw: float | None) -> float | None:
    if backbone is None or raw is None or raw <= 0:
        return None
    return round(backbone / raw, 4)


@dataclass(frozen=True)
class Target:
    name: str
    value: Callable[[Mapping[str, Any]], float | None]
    unit: str
    op: str
    threshold: float

    def evaluate(self, results: Mapping[str, Any]) -> TargetRow:
        value = self.value(results)
        met = None if value is None else _OPS[self.op](value, self.threshold)
        return TargetRow(
            name=self.name,
            value=value,
            unit=self.unit,
            op=self.op,
            threshold=self.threshold,
            met=met,
        )


RAW_PIPELINE = ("raw", "pipeline", "records_per_s")


def _messages_ratio(recipients: str) -> Callable[[Mapping[str, Any]], float | None]:
    def value(results: Mapping[str, Any]) -> float | None:
        backbone = lookup(results, ("end_to_end", recipients, "max", "messages_per_s"))
        return ratio(backbone, lookup(results, RAW_PIPELINE))

    return value


def _at(*path: str, scale: float = 1.0) -> Callable[[Mapping[str, Any]], float | None]:
    def value(results: Mapping[str, Any]) -> float | None:
        found = lookup(results, path)
        return None if found is None else round(found * scale, 2)

    return value


def _peak_mib(kind: str) -> Callable[[Mapping[str, Any]], float | None]:
    return _at("memory", kind, "peak_rss_mib")


def targets() -> list[Target]:
    """The issue's targets (2-core machine, everything on it)."""
    rows: list[Target] = []
    for n in ("1", "5"):
        rows.append(
            Target(
                f"e2e messages/s ({n} rcpt) / raw pipeline records/s",
                _messages_ratio(n),
                "ratio",
                ">=",
                0.40,
            )
        )
    for n in ("1", "5"):
        base = ("end_to_end", n, "latency", "send_to_stream")
        rows.append(
            Target(
                f"latency median at half max ({n} rcpt)", _at(*base, "median_ms"), "ms", "<=", 30.0
            )
        )
        rows.append(
            Target(f"latency p99 at half max ({n} rcpt)", _at(*base, "p99_ms"), "ms", "<=", 150.0)
        )
    for way in ("paging", "sse"):
        rows.append(
            Target(
                f"catch-up via {way}",
                _at("catch_up", way, "entries_per_s"),
                "entries/s",
                ">=",
                20_000.0,
            )
        )
    rows.extend(write_path_targets())
    rows.append(Target("API peak RSS under load", _peak_mib("api"), "MiB", "<", 250.0))
    rows.append(Target("worker peak RSS under load", _peak_mib("worker"), "MiB", "<", 400.0))
    return rows


STACK = ("worker", "api", "kafka", "cassandra")  # the load generator is not the stack


def _entries_ratio(recipients: str) -> Callable[[Mapping[str, Any]], float | None]:
    def value(results: Mapping[str, Any]) -> float | None:
        entries = lookup(results, ("end_to_end", recipients, "max", "mailbox_entries_per_s"))
        return ratio(entries, lookup(results, RAW_PIPELINE))

    return value


def _stack_cpu_ms(results: Mapping[str, Any]) -> float | None:
    """CPU per message summed over the stack's processes in the 1-recipient sweep; None when
    a process was not sampled (a partial sum would flatter the figure)."""
    for row in cpu_per_message(results):
        if row["phase"] == "e2e 1 rcpt throughput sweep":
            costs = row["ms_per_message"]
            if any(costs.get(k) is None for k in STACK):
                return None
            return round(sum(costs[k] for k in STACK), 2)
    return None


def write_path_targets() -> list[Target]:
    """Issue 17's targets for the write path (ratios to the raw pipeline of the same run)."""
    rows = [
        Target(
            "write path: messages/s (1 rcpt) / raw pipeline records/s",
            _messages_ratio("1"),
            "ratio",
            ">=",
            0.10,
        ),
        Target(
            "write path: mailbox entries/s (5 rcpt) / raw pipeline records/s",
            _entries_ratio("5"),
            "ratio",
            ">=",
            0.25,
        ),
        Target("write path: stack CPU per message (1 rcpt)", _stack_cpu_ms, "ms", "<=", 8.0),
    ]
    for n in ("1", "5"):
        answer = ("end_to_end", n, "latency", "send_to_201", "median_ms")
        rows.append(
            Target(
                f"write path: send -> answer median at half max ({n} rcpt)",
                _at(*answer),
                "ms",
                "<=",
                10.0,
            )
        )
    return rows


def evaluate(results: Mapping[str, Any]) -> list[TargetRow]:
    return [t.evaluate(results) for t in targets()]


def ratios(results: Mapping[str, Any]) -> list[RatioRow]:
    """Each backbone figure next to the raw limit it is compared with."""
    pipeline = lookup(results, RAW_PIPELINE)
    rows: list[tuple[str, float | None, float | None]] = []
    for n in ("1", "5"):
        best = ("end_to_end", n, "max")
        rows.append(
            (
                f"e2e messages/s ({n} rcpt) : raw pipeline records/s",
                lookup(results, (*best, "messages_per_s")),
                pipeline,
            )
        )
        rows.append(
            (
                f"e2e mailbox entries/s ({n} rcpt) : raw pipeline records/s",
                lookup(results, (*best, "mailbox_entries_per_s")),
                pipeline,
            )
        )
    raw_read = lookup(results, ("raw", "cassandra", "read_rows_per_s"))
    for way in ("paging", "sse"):
        rows.append(
            (
                f"catch-up via {way} entries/s : raw Cassandra page reads rows/s",
                lookup(results, ("catch_up", way, "entries_per_s")),
                raw_read,
            )
        )
    sequencer = lookup(results, ("catch_up", "sequenced_per_s"))
    for sockets, key in (("default sockets", "rows_per_s"), ("TCP_NODELAY", "rows_per_s_nodelay")):
        rows.append(
            (
                f"sequencer, one identity : raw one-partition batches ({sockets})",
                sequencer,
                lookup(results, ("raw", "cassandra_batches", key)),
            )
        )
    raw_latency = lookup(results, ("raw", "kafka", "latency", "median_ms"))
    for n in ("1", "5"):
        rows.append(
            (
                f"latency median ({n} rcpt) : raw Kafka produce->consume median",
                lookup(results, ("end_to_end", n, "latency", "send_to_stream", "median_ms")),
                raw_latency,
            )
        )
    return [RatioRow(name=name, backbone=b, raw=r, ratio=ratio(b, r)) for name, b, r in rows]
