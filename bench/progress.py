"""A progress bar for long phases: tqdm when the `bench` extra is installed, else one
line on stderr rewritten in place (throttled, so it costs nothing measurable)."""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from types import TracebackType
from typing import Any


def _tqdm() -> Any:
    # Imported dynamically: tqdm ships no type information and the project's mypy config
    # is not ours to change; treating it as Any is the honest type here.
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


class Progress:
    """`with Progress("raw kafka", total=20000, unit="rec") as bar: bar.update(500)`."""

    def __init__(self, desc: str, total: float, unit: str = "it") -> None:
        self.desc = desc
        self.total = total
        self.unit = unit
        self.done = 0.0
        self._bar: Any = None
        self._last_print = 0.0
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        factory = _tqdm()
        if factory is not None and sys.stderr.isatty():
            self._bar = factory(
                total=self.total,
                desc=self.desc,
                unit=self.unit,
                leave=False,
                dynamic_ncols=True,
                file=sys.stderr,
            )
        elif factory is not None:
            # Not a terminal (a log file): tqdm still works, with fewer refreshes.
            self._bar = factory(
                total=self.total,
                desc=self.desc,
                unit=self.unit,
                leave=False,
                mininterval=5.0,
                file=sys.stderr,
            )
        else:
            self._print(force=True)
        return self

    def update(self, n: float = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._print()

    def set(self, done: float) -> None:
        """Move to an absolute position (for phases that count in their own loop)."""
        self.update(done - self.done)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def _print(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_print < 0.5:
            return
        self._last_print = now
        share = f"{100 * self.done / self.total:5.1f}%" if self.total else ""
        elapsed = now - self._started
        sys.stderr.write(
            f"\r  {self.desc}: {share} {self.done:,.0f}/{self.total:,.0f} {self.unit} "
            f"({elapsed:.0f}s)   "
        )
        sys.stderr.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            self._print(force=True)
            sys.stderr.write("\n")
        sys.stderr.flush()


def phase(text: str) -> None:
    """A one-line heading on stderr, so the log shows where a run is."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


async def follow_clock(bar: Progress, seconds: float) -> None:
    """Move a time-based bar (total in seconds) with the clock until cancelled."""
    started = time.monotonic()
    while True:
        bar.set(min(seconds, round(time.monotonic() - started)))
        await asyncio.sleep(0.5)
