"""Child processes the launcher starts, tracked by pid files in the state directory.

A pid file alone is not proof: after a reboot the pid may belong to someone else. A
process counts as ours only while its command line still names our state directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class LaunchError(RuntimeError):
    """A service could not be prepared or started; the message says what to do."""


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    run_dir: Path
    marker: str  # a string our command line always contains (the state directory)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        cmdline = _cmdline(pid)
        if cmdline is not None and self.marker in cmdline and _alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.run_dir,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # survives the CLI and is not hit by its Ctrl-C
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def exited(self) -> bool:
        return self.pid() is None

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`. Returns True when something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])


def _cmdline(pid: int) -> str | None:
    # While a process is between fork and exec, its cmdline reads empty for a moment
    # (seen in about 4 of 100 starts here): wait that out instead of calling it foreign.
    for _ in range(50):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw or not _alive(pid):
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.02)
    return ""


def _alive(pid: int) -> bool:
    # A zombie still has a /proc entry; reap it if it is our child, then look at its state.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by `pid` (a process started in a session of its own),
    or just the process when the group cannot be signalled."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A loopback port nothing listens on now (for extra local processes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_free_ports(service: str, ports: dict[str, int]) -> None:
    taken = [f"{label} {port}" for label, port in ports.items() if port_in_use(port)]
    if taken:
        raise LaunchError(
            f"{service} cannot start: port {', '.join(taken)} is already in use on 127.0.0.1. "
            f"Stop whatever holds it, or choose other ports (see README: configuration)."
        )
