"""Warnings and errors the backbone logged while the benchmark ran.

The worker and the API log JSON lines (`backbone/logs.py`). The benchmark notes each log
file's size when it starts and, at the end, reads what was appended since: lines at level
warning or above are counted per logger and message (its first 160 characters, so the
same failure with different ids groups together only when the text starts alike).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

LEVELS = ("warning", "error", "critical")


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def findings(path: Path, offset: int, top: int = 12) -> dict[str, Any]:
    """`{"lines": n, "by_level": {...}, "top": [[count, "level logger: message"], ...]}`."""
    counts: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    lines = 0
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            for raw in fh:
                lines += 1
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue  # a line that is not ours (a library printing)
                level = str(record.get("level", "")).lower()
                if level not in LEVELS:
                    continue
                levels[level] += 1
                message = str(record.get("message", ""))[:160].replace("\n", " ")
                counts[f"{level} {record.get('logger', '?')}: {message}"] += 1
    except OSError:
        return {"lines": 0, "by_level": {}, "top": []}
    return {
        "lines": lines,
        "by_level": dict(levels),
        "top": [[n, text] for text, n in counts.most_common(top)],
    }
