"""Resident memory and CPU of the backbone's processes, sampled from /proc during a run.

- Memory: every 0.25 s a thread reads `VmRSS` of each watched process and keeps the
  highest value seen while the benchmark ran ("peak RSS under load"); `VmHWM` (the
  kernel's own high-water mark over the process' whole life) is read at the end too.
- CPU: at each phase boundary (`mark`) the user+system CPU time of every watched process
  is read from `/proc/<pid>/stat`; per phase this gives the share of one core each used,
  which shows where the 2 cores went (backbone, Kafka, Cassandra, the load generator).

Processes are grouped by kind ("api", "worker", "kafka", "cassandra", "bench"); a kind's
peak is the highest of its processes (each API or worker process must stay under the
target on its own).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB = 1024
MIB = 1024 * 1024
MIN_PHASE_S = 0.5


class KindMemory(TypedDict):
    pids: list[int]
    peak_rss_mib: float
    hwm_mib: float


def read_status_kib(pid: int, field_name: str) -> int | None:
    """A `Vm*` line of /proc/<pid>/status in KiB, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot (first line of /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (children not included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 0, utime 11, stime 12 (man 5 proc, 14 and 15).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Sampler:
    """Samples the watched processes in a background thread while it is running."""

    watched: dict[str, list[int]]  # kind -> pids
    interval_s: float = 0.25
    peak_kib: dict[int, int] = field(default_factory=dict)
    hwm_kib: dict[int, int] = field(default_factory=dict)
    phase_peak_kib: dict[int, int] = field(default_factory=dict)  # since the last mark
    _lock: threading.Lock = field(default_factory=threading.Lock)
    phases: list[dict[str, object]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last_mark: tuple[str, float, dict[int, float], float | None] | None = None

    def watch(self, kind: str, pid: int) -> None:
        """Add a process (an extra worker or API started during the run)."""
        self.watched.setdefault(kind, [])
        if pid not in self.watched[kind]:
            self.watched[kind].append(pid)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        for pids in list(self.watched.values()):
            for pid in list(pids):
                rss = read_status_kib(pid, "VmRSS")
                if rss is not None:
                    with self._lock:
                        self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), rss)
                        self.phase_peak_kib[pid] = max(self.phase_peak_kib.get(pid, 0), rss)
                hwm = read_status_kib(pid, "VmHWM")
                if hwm is not None:  # kept: an extra process may be gone by the report
                    self.hwm_kib[pid] = hwm

    def mark(self, phase: str) -> bool:
        """Close the previous phase's CPU account and open one named `phase`. Returns
        whether the closed phase was recorded (one shorter than `MIN_PHASE_S` is not:
        CPU shares of a few clock ticks over a few milliseconds are noise)."""
        now = time.monotonic()
        cpu = {
            pid: c
            for pids in self.watched.values()
            for pid in pids
            if (c := cpu_seconds(pid)) is not None
        }
        busy = machine_busy_seconds()
        self._sample()
        with self._lock:
            phase_peaks, self.phase_peak_kib = self.phase_peak_kib, {}
        recorded = False
        if self._last_mark is not None and now - self._last_mark[1] >= MIN_PHASE_S:
            name, started, before, busy_before = self._last_mark
            wall = now - started
            shares: dict[str, float] = {}
            for kind, pids in self.watched.items():
                used = sum(cpu[p] - before[p] for p in pids if p in cpu and p in before)
                shares[kind] = round(100 * used / wall, 1)
            if busy is not None and busy_before is not None:
                # The machine is shared: what the watched processes did not use went to
                # someone else (other test runs, the OS).
                shares["machine"] = round(100 * (busy - busy_before) / wall, 1)
                shares["other"] = round(
                    shares["machine"] - sum(v for k, v in shares.items() if k != "machine"), 1
                )
            peaks = {
                kind: round(max(phase_peaks.get(p, 0) for p in pids) * KIB / MIB, 1)
                for kind, pids in self.watched.items()
                if kind in ("api", "worker") and pids
            }
            self.phases.append(
                {
                    "phase": name,
                    "seconds": round(wall, 1),
                    "cpu_percent": shares,
                    "peak_rss_mib": peaks,
                }
            )
            recorded = True
        self._last_mark = (phase, now, cpu, busy)
        return recorded

    def memory(self) -> dict[str, KindMemory]:
        out: dict[str, KindMemory] = {}
        for kind, pids in self.watched.items():
            peaks = [self.peak_kib[p] for p in pids if p in self.peak_kib]
            hwms = [self.hwm_kib[p] for p in pids if p in self.hwm_kib]
            out[kind] = KindMemory(
                pids=list(pids),
                peak_rss_mib=round(max(peaks) * KIB / MIB, 1) if peaks else 0.0,
                hwm_mib=round(max(hwms) * KIB / MIB, 1) if hwms else 0.0,
            )
        return out
