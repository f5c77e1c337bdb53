"""The process wrapper without a pid file: what the tests and the benchmarks start and
stop themselves (the pid-file mode is covered by test_launcher)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from localproc.process import ManagedProcess


def test_a_child_is_known_by_its_handle_and_its_exit_status_kept(tmp_path: Path) -> None:
    code = "import sys; print('started', flush=True); sys.exit(3)"
    proc = ManagedProcess("child", tmp_path, argv=[sys.executable, "-c", code])
    proc.start()
    assert not proc.pid_file.exists()
    assert proc.wait(timeout=30)
    with pytest.raises(RuntimeError, match=r"child exited with 3:\nstarted"):
        proc.check_alive()
    assert proc.stop() is False  # nothing left to stop


def test_stop_sends_the_given_signal_and_a_restart_logs_after_the_old_lines(
    tmp_path: Path,
) -> None:
    code = "import time; print('up', flush=True); time.sleep(60)"
    proc = ManagedProcess("sleeper", tmp_path, argv=[sys.executable, "-c", code], grace_s=10)
    proc.start()
    deadline = time.monotonic() + 30
    while "up" not in proc.log_tail():  # the first run has written its line
        proc.check_alive()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.stop(signal.SIGKILL) is True
    assert proc.returncode == -signal.SIGKILL
    proc.start()
    assert proc.log_offset > 0  # what the second run writes starts here
    assert proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10)
    assert proc.pid() is None
