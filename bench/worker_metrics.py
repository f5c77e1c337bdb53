"""Where a message waits inside the worker, from the worker's own Prometheus histograms.

The running worker serves `backbone_decider_lag_seconds` (command appended → decided) and
`backbone_projection_lag_seconds` (event appended → its read model written) on
`BACKBONE_WORKER_METRICS_PORT`. Scraped at each phase boundary, the difference of their
`_sum` and `_count` gives the mean lag per command and event type during the phase: if
the projection lag grows with load while the decider lag stays small, the projector is
where messages queue. Only the stack's own worker is scraped (extra workers run with the
endpoint off, as two cannot share the port).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import TypedDict

_LINE = re.compile(
    r'^backbone_(decider|projection)_lag_seconds_(sum|count)\{(?:command|event)="([^"]+)"\}'
    r"\s+([0-9.eE+-]+)$"
)

Snapshot = dict[str, tuple[float, float]]  # "decider SendMessage" -> (sum s, count)


class StageLag(TypedDict):
    count: int
    mean_ms: float


def parse(text: str) -> Snapshot:
    """The sum and count of each decider and projection lag histogram series."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        found = _LINE.match(line.strip())
        if not found:
            continue
        stage, part, label, value = found.groups()
        target = sums if part == "sum" else counts
        target[f"{stage} {label}"] = float(value)
    return {k: (sums[k], counts.get(k, 0.0)) for k in sums}


def scrape(port: int, timeout_s: float = 2.0) -> Snapshot | None:
    if not port:
        return None
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=timeout_s
        ) as answer:
            return parse(answer.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def between(before: Snapshot, after: Snapshot) -> dict[str, StageLag]:
    """Mean lag per series over what happened between two snapshots."""
    out: dict[str, StageLag] = {}
    for key, (total, count) in after.items():
        total0, count0 = before.get(key, (0.0, 0.0))
        n = int(count - count0)
        if n > 0:
            out[key] = StageLag(count=n, mean_ms=round(1000 * (total - total0) / n, 1))
    return out
