"""The API's Prometheus metrics (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Histogram(
    "backbone_api_request_seconds",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
COMMANDS = Counter(
    "backbone_api_commands_total",
    "Commands sent to the event log, by command and outcome (ok, rejected, unavailable)",
    ["command", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "backbone_api_command_seconds",
    "From appending a command to receiving its outcome",
    ["command"],
)
LOGINS = Counter("backbone_api_logins_total", "Token requests by outcome", ["outcome"])
