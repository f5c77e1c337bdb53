"""A child process with a log file of its own, started in a session of its own.

Two ways to know it again. A process started with a `marker` gets a pid file in its run
directory, so that a later command (`backbone down`, `connector stop`) finds it; a pid file
alone is not proof, since after a reboot the pid may belong to someone else, so it counts as
ours only while its command line still contains the marker. Without a marker, only the object
that started it knows it (tests and benchmarks, which stop what they start before they end).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(eq=False)
class ManagedProcess:
    name: str
    run_dir: Path  # the log (and pid file) directory, and the default working directory
    marker: str | None = None  # a string our command line always contains: keep a pid file
    argv: Sequence[str] = ()  # the command `start()` runs when given none
    env: Mapping[str, str] | None = None  # added to this process's environment
    cwd: Path | None = None  # where the command runs; the run directory when None
    grace_s: float = 30.0  # how long `stop()` waits after SIGTERM before SIGKILL
    # The log's size when the process last started: what it wrote since starts there.
    log_offset: int = field(default=0, init=False)
    _child: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        if self.marker is None:
            return self._child.pid if self._child and self._child.poll() is None else None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        cmdline = _cmdline(pid)
        if cmdline is not None and self.marker in cmdline and self._running(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    @property
    def returncode(self) -> int | None:
        """The exit status of a process this object started and that has ended."""
        return self._child.poll() if self._child is not None else None

    def start(self, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self._child = subprocess.Popen(
                list(self.argv if argv is None else argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd or self.run_dir,
                env={**os.environ, **(self.env or {}), **(env or {})},
                start_new_session=True,  # survives the CLI and is not hit by its Ctrl-C
            )
        if self.marker is not None:
            self.pid_file.write_text(str(self._child.pid))
        return self._child.pid

    def exited(self) -> bool:
        return self.pid() is None

    def check_alive(self) -> None:
        """Raise, with the log's tail, when the process is not running (any more)."""
        if self.exited():
            status = "" if self.returncode is None else f" with {self.returncode}"
            raise RuntimeError(f"{self.name} exited{status}:\n{self.log_tail()}")

    def send_signal(self, sig: signal.Signals) -> bool:
        """Send `sig` to the process's group; False when it does not run."""
        pid = self.pid()
        if pid is None:
            return False
        signal_group(pid, sig)
        return True

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to end; True once it has."""
        pid = self.pid()
        return pid is None or self._wait_gone(pid, timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float | None = None) -> bool:
        """`sig` (SIGTERM), then SIGKILL after `timeout` (`grace_s`). True when something was
        stopped."""
        pid = self.pid()
        if pid is None:
            return False
        signal_group(pid, sig)
        if not self._wait_gone(pid, self.grace_s if timeout is None else timeout):
            signal_group(pid, signal.SIGKILL)
            self._wait_gone(pid, None)
        if self.marker is not None:
            self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def _running(self, pid: int) -> bool:
        # Our own child is asked through its Popen, which keeps its exit status.
        if self._child is not None and self._child.pid == pid:
            return self._child.poll() is None
        return _alive(pid)

    def _wait_gone(self, pid: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running(pid):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


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
