"""The workers' Prometheus metrics (served on BACKBONE_WORKER_METRICS_PORT)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from store.envelopes import Opened

DECISIONS = Counter(
    "backbone_decider_commands_total",
    "Commands decided, by aggregate, command and outcome",
    ["aggregate", "command", "outcome"],
)
DECIDER_LAG = Histogram(
    "backbone_decider_lag_seconds", "From a command's append to its decision", ["command"]
)
PROJECTION_LAG = Histogram(
    "backbone_projection_lag_seconds", "From an event's append to its read-model write", ["event"]
)
PROJECTION_RETRIES = Counter(
    "backbone_projection_retries_total", "Read-model writes retried after a Cassandra error"
)
SKIPPED_RECORDS = Counter(
    "backbone_stream_skipped_records_total",
    "Records an agent's stream skipped, read from the log instead (streams/faust_fixes.py)",
    ["topic"],
)
RECOVERY_REFETCHES = Counter(
    "backbone_recovery_refetches_total",
    "Changelog partitions a stuck table recovery fetched again (streams/recovery_watch.py)",
    ["topic"],
)


def age(record: Opened) -> float:
    occurred: datetime = record.envelope["occurred_at"]
    return max(0.0, (datetime.now(UTC) - occurred).total_seconds())
