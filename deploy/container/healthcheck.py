"""The containers' HEALTHCHECK: one command for the API, the worker and the Connector.

The backbone's image runs either `backbone api` or `backbone worker` (which execs faust),
and a Dockerfile has a single HEALTHCHECK, so the check looks at what runs as PID 1 and
asks that process the question it can answer:

- API: `GET /health` (the process serves; `/ready`, which also asks Kafka and Cassandra,
  would mark every API unhealthy during a store outage and gains nothing from a restart);
- worker: `GET /metrics` on `BACKBONE_WORKER_METRICS_PORT` (the worker has no other HTTP
  endpoint; with the port 0 only "PID 1 is alive" is left, which the engine knows already);
- Connector: `GET /Monitoring/Version` (liveness: its `/health` is 503 while the backbone
  is away, which a restart would not fix).

Kubernetes ignores HEALTHCHECK; the chart has its own probes on the same paths.
Exit 0 healthy, 1 not (Docker's convention).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 3.0


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, "").strip() or default)


def target(cmdline: list[str]) -> str | None:
    """The URL that tells whether the process with this command line is alive; None when
    it has no endpoint to ask."""
    words = " ".join(Path(word).name for word in cmdline).split()
    if "faust" in words:
        port = _port("BACKBONE_WORKER_METRICS_PORT", 9102)
        return f"http://127.0.0.1:{port}/metrics" if port else None
    if "connector" in words or "connector-run" in words:
        return f"http://127.0.0.1:{_port('CONNECTOR_PORT', 8090)}/Monitoring/Version"
    return f"http://127.0.0.1:{_port('BACKBONE_API_PORT', 8080)}/health"


def main() -> int:
    cmdline = [part.decode() for part in Path("/proc/1/cmdline").read_bytes().split(b"\0")]
    url = target(cmdline)
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:  # noqa: S310 (loopback)
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
