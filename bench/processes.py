"""The backbone's processes on this machine: the ones `backbone up` runs (found by their
pid files), and extra workers and APIs the benchmark starts for scale-out and stops again.

Extra workers run `backbone worker --data-dir <tmp>` with the environment the benchmark
runs in (so with the same settings as the running worker: they join the same consumer
groups and share the partitions); their Prometheus port is switched off, since the
running worker holds it. Extra APIs run `backbone api --port <free port>`. Every extra
process is started in its own session and stopped by its own process id: SIGTERM, then
SIGKILL after a grace period; `stop_all` runs on every way out (also Ctrl-C).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from backbone.settings import InfraSettings, default_state_dir
from deploy.backbone import worker_ready
from localproc.ports import free_port
from localproc.process import ManagedProcess

SEQUENCER_ASSIGNED = b"sequencer partitions assigned"
STACK_PARTS = {"api": "api", "worker": "worker", "kafka": "kafka", "cassandra": "cassandra"}


def stack_pids(infra: InfraSettings) -> dict[str, list[int]]:
    """kind -> pids of the running local stack (from `<state>/<part>/<part>.pid`, as
    `backbone status` finds them)."""
    found: dict[str, list[int]] = {}
    for kind, part in STACK_PARTS.items():
        # Kafka and Cassandra may be shared with a backbone that has a state directory of
        # its own (BACKBONE_STATE_DIR): then they are found under the default one.
        dirs = [infra.state_dir]
        if kind in ("kafka", "cassandra"):
            dirs.append(default_state_dir())
        for state_dir in dirs:
            home = state_dir / part
            # The launcher's own record of it: a pid file whose process still names `home`.
            pid = ManagedProcess(part, home, marker=str(home)).pid()
            if pid is not None:
                found[kind] = [pid]
                break
    return found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def worker_log(infra: InfraSettings) -> Path:
    return infra.state_dir / "worker" / "worker.log"


def api_log(infra: InfraSettings) -> Path:
    return infra.state_dir / "api" / "api.log"


def _backbone_command() -> list[str]:
    # The `backbone` script of the venv we run in, else the same CLI as a module.
    script = Path(sys.executable).parent / "backbone"
    return [str(script)] if script.exists() else [sys.executable, "-m", "backbone.cli"]


@dataclass
class Extra:
    kind: str  # "worker" or "api"
    process: ManagedProcess
    pid: int
    url: str | None = None

    @property
    def log(self) -> Path:
        return self.process.log_file

    def tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)


REPO = Path(__file__).resolve().parent.parent
CODE_DIRS = ("api", "streams", "schemas", "backbone")


def code_changed_since(pid: int) -> list[str]:
    """Backbone source files modified after process `pid` started: an extra process started
    now would run different code than it (others may be editing the working tree)."""
    try:
        started = Path(f"/proc/{pid}").stat().st_mtime
    except OSError:
        return []
    return sorted(
        str(f.relative_to(REPO))
        for d in CODE_DIRS
        for f in (REPO / d).rglob("*")
        if f.suffix in (".py", ".avsc") and f.stat().st_mtime > started
    )


def git_head() -> str | None:
    """The repository's HEAD commit (read-only), or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def started_at(pid: int) -> float | None:
    """When a process started (epoch seconds), from its /proc entry."""
    try:
        return Path(f"/proc/{pid}").stat().st_mtime
    except OSError:
        return None


def export_revision(rev: str, into: Path) -> Path:
    """The backbone's code at git revision `rev`, exported (read-only for the repository:
    `git archive`) into a directory the extra processes run from."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


class ExtraProcesses:
    """Extra workers and APIs in a temporary directory (their data and logs). With `code`,
    they import the backbone from that directory instead of the working tree."""

    def __init__(self, code: Path | None = None) -> None:
        self._root: Path | None = None
        self.extras: list[Extra] = []
        self.code = code

    @property
    def root(self) -> Path:
        """A temporary directory for the extras' data and logs, made on first use (kept
        afterwards, so their logs can be read)."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        return self._root

    def _start(self, kind: str, args: list[str], env: dict[str, str]) -> Extra:
        """`backbone <args>` as a new process group, its output in a log of its own."""
        argv = [*_backbone_command(), *args]
        if self.code is not None:
            # `python -m` puts the working directory first on sys.path, and PYTHONPATH
            # reaches the faust process `backbone worker` replaces itself with.
            argv = [sys.executable, "-m", "backbone.cli", *args]
            env = {**env, "PYTHONPATH": str(self.code)}
        process = ManagedProcess(
            f"{kind}{len(self.extras)}", self.root, argv=argv, env=env, cwd=self.code
        )
        extra = Extra(kind, process, process.start())
        self.extras.append(extra)
        return extra

    def start_worker(self) -> Extra:
        data = self.root / f"worker{len(self.extras)}-data"
        args = ["worker", "--data-dir", str(data)]
        return self._start("worker", args, {"BACKBONE_WORKER_METRICS_PORT": "0"})

    def start_api(self) -> Extra:
        port = free_port()
        extra = self._start("api", ["api", "--port", str(port)], {})
        extra.url = f"http://127.0.0.1:{port}"
        return extra

    async def wait_worker_ready(self, extra: Extra, timeout_s: float = 120.0) -> float:
        """Seconds until faust says `[^Worker]: Ready` (joined, tables recovered) and the
        mailbox sequencer, which has a consumer group of its own, has got partitions."""
        started = time.monotonic()
        while not (worker_ready(extra.log, 0) and SEQUENCER_ASSIGNED in _read(extra.log)):
            extra.process.check_alive()
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"extra worker not ready in {timeout_s:.0f}s:\n{extra.tail()}")
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def wait_api_ready(self, extra: Extra, timeout_s: float = 60.0) -> float:
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=3) as http:
            while True:
                extra.process.check_alive()
                try:
                    if (await http.get(f"{extra.url}/ready")).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"extra API not ready in {timeout_s:.0f}s:\n{extra.tail()}")
                await asyncio.sleep(0.5)

    def workers(self) -> list[Extra]:
        return [e for e in self.extras if e.kind == "worker"]

    def apis(self) -> list[Extra]:
        return [e for e in self.extras if e.kind == "api"]

    def stop(self, extras: list[Extra], grace_s: float = 30.0) -> None:
        """SIGTERM the given extra processes, SIGKILL what is left after `grace_s`."""
        # Each extra leads its own process group (start_new_session): signalling the group
        # reaches a child it may have, and nothing we did not start.
        for extra in extras:
            extra.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for extra in extras:
            if not extra.process.wait(max(0.1, deadline - time.monotonic())):
                extra.process.stop(signal.SIGKILL, timeout=10)
            if extra in self.extras:
                self.extras.remove(extra)

    def stop_all(self) -> None:
        self.stop(list(self.extras))
