"""The backbone's own processes on this machine: one faust worker, one API and the auditor.

Started by `backbone up` after the infrastructure and provisioning, stopped by `backbone
down`. Production runs the same commands (`backbone worker`, `backbone api`, `backbone
auditor`) under its own supervisor, as many workers and APIs as it likes and one auditor
(it signs checkpoints of the log: backbone/audit/).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from backbone.settings import BackboneSettings, InfraSettings
from deploy.infra import ServiceStatus
from deploy.process import LaunchError, require_free_ports
from localproc.process import ManagedProcess

READY_TIMEOUT_S = 90.0
WORKER_READY = b"[^Worker]: Ready"


@dataclass(frozen=True)
class Part:
    process: ManagedProcess
    argv: list[str]


def parts(infra: InfraSettings, settings: BackboneSettings | None = None) -> list[Part]:
    worker_dir = infra.state_dir / "worker"
    api_dir = infra.state_dir / "api"
    auditor_dir = infra.state_dir / "auditor"
    return [
        Part(
            ManagedProcess("worker", worker_dir, marker=str(worker_dir)),
            [
                sys.executable,
                "-m",
                "backbone.cli",
                "worker",
                "--data-dir",
                str(worker_dir / "data"),
            ],
        ),
        Part(
            ManagedProcess("api", api_dir, marker=str(api_dir)),
            [sys.executable, "-m", "backbone.cli", "api", "--run-dir", str(api_dir)],
        ),
        Part(
            ManagedProcess("auditor", auditor_dir, marker=str(auditor_dir)),
            [sys.executable, "-m", "backbone.cli", "auditor", "--run-dir", str(auditor_dir)],
        ),
    ]


def api_url(settings: BackboneSettings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}"


def up(infra: InfraSettings, settings: BackboneSettings, echo: bool = True) -> None:
    """Start the worker and the API unless they run; wait until both are ready."""
    worker_log_offset: int | None = None
    for part in parts(infra, settings):
        if part.process.pid() is not None:
            continue
        if part.process.name == "api":
            require_free_ports("api", {"http port": settings.api_port})
        else:
            worker_log_offset = _size(part.process.log_file)
        part.process.start(part.argv)
        if echo:
            print(f"started {part.process.name} (log: {part.process.log_file})")
    _wait_ready(infra, settings, worker_log_offset)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def worker_ready(log_file: Path, offset: int) -> bool:
    # faust logs this once the worker has joined its group and recovered its tables; until
    # then commands would wait, and the first request of a newcomer could time out.
    with log_file.open("rb") as fh:
        fh.seek(offset)
        return WORKER_READY in fh.read()


def _wait_ready(
    infra: InfraSettings, settings: BackboneSettings, worker_log_offset: int | None
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for part in parts(infra, settings):
            if part.process.exited():
                raise LaunchError(
                    f"{part.process.name} exited during start-up. Last lines of "
                    f"{part.process.log_file}:\n{part.process.log_tail()}"
                )
        worker = parts(infra, settings)[0].process
        if worker_log_offset is not None and not worker_ready(worker.log_file, worker_log_offset):
            time.sleep(0.5)
            continue
        # faust logs "Ready" before its tasks run, and the metrics endpoint is one of them:
        # until it answers, the status printed next would call the worker not answering.
        port = settings.worker_metrics_port
        if port and _get(f"http://127.0.0.1:{port}/metrics") is None:
            time.sleep(0.5)
            continue
        try:
            with urllib.request.urlopen(f"{api_url(settings)}/ready", timeout=3) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise LaunchError(
        f"the worker or the API did not become ready within {READY_TIMEOUT_S:.0f}s; "
        f"see the logs in {infra.state_dir}/worker and {infra.state_dir}/api"
    )


def down(infra: InfraSettings, settings: BackboneSettings, echo: bool = True) -> None:
    for part in reversed(parts(infra, settings)):
        stopped = part.process.stop()
        if echo:
            print(
                f"stopped {part.process.name}"
                if stopped
                else f"{part.process.name} was not running"
            )


def status(infra: InfraSettings, settings: BackboneSettings) -> list[tuple[str, int | None]]:
    return [(p.process.name, p.process.pid()) for p in parts(infra, settings)]


def _get(url: str) -> tuple[int, bytes] | None:
    """Status and body of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 (our own URL)
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except (urllib.error.URLError, OSError):
        return None


def health(infra: InfraSettings) -> list[ServiceStatus]:
    """The worker and the API as `backbone status` shows them. Reads the ports from the
    environment like the processes do, without BackboneSettings (which would make secrets
    in the state directory): a status command writes nothing."""
    host = os.environ.get("BACKBONE_API_HOST", "").strip() or BackboneSettings.api_host
    api_port = int(os.environ.get("BACKBONE_API_PORT", "") or BackboneSettings.api_port)
    metrics_port = int(
        os.environ.get("BACKBONE_WORKER_METRICS_PORT", "") or BackboneSettings.worker_metrics_port
    )
    worker, api, auditor = (part.process for part in parts(infra))
    rows = []
    worker_pid = worker.pid()
    if metrics_port:
        answer = _get(f"http://127.0.0.1:{metrics_port}/metrics") if worker_pid else None
        detail = "metrics at /metrics" if answer and answer[0] == 200 else ""
        rows.append(
            ServiceStatus(
                "worker",
                "-",
                f"127.0.0.1:{metrics_port}",
                worker_pid,
                worker_pid is not None and bool(detail),
                detail,
            )
        )
    else:
        rows.append(
            ServiceStatus("worker", "-", "(no metrics port)", worker_pid, worker_pid is not None)
        )
    api_pid = api.pid()
    answer = _get(f"http://{host}:{api_port}/ready") if api_pid else None
    detail = ""
    if answer is not None:
        try:
            checks = json.loads(answer[1])
            detail = "ready: " + ", ".join(f"{k} {v}" for k, v in checks.items())
        except (ValueError, AttributeError):
            detail = f"/ready answered {answer[0]}"
    rows.append(
        ServiceStatus(
            "api",
            "0.1.0",
            f"{host}:{api_port}",
            api_pid,
            answer is not None and answer[0] == 200,
            detail,
        )
    )
    # The auditor serves nothing: it runs, and its checkpoints are `backbone audit checkpoints`.
    auditor_pid = auditor.pid()
    detail = "signs checkpoints (backbone audit checkpoints)" if auditor_pid else ""
    rows.append(ServiceStatus("auditor", "-", "-", auditor_pid, auditor_pid is not None, detail))
    return rows


def log_tail(infra: InfraSettings, name: str, lines: int) -> tuple[Path, str]:
    for part in parts(infra):
        if part.process.name == name:
            return part.process.log_file, part.process.log_tail(lines)
    raise LaunchError(f"unknown process {name!r}; choose api, worker or auditor")
