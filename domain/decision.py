"""What every decider returns: events to append, or a rejection with an error code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rejection:
    status: int
    code: str
    message: str


Event = tuple[str, dict[str, Any]]  # (record name, body)
