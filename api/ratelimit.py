"""Failed-login limiting: after too many wrong passwords a username is locked for a while.

Kept per API process. With N replicas an attacker gets at most N times the budget; a
shared limiter (a Kafka-backed table) is noted as open work.
"""

from __future__ import annotations

import time
from collections import deque


class FailedLogins:
    def __init__(self, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, username: str, now: float) -> deque[float]:
        q = self._failures.setdefault(username, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def locked_for(self, username: str, now: float | None = None) -> float:
        """Seconds until `username` may try again; 0 when not locked."""
        now = time.monotonic() if now is None else now
        q = self._recent(username, now)
        if len(q) < self.max_failures:
            return 0.0
        return max(0.0, q[0] + self.window_s - now)

    def failed(self, username: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(username, now).append(now)
        if len(self._failures) > 100_000:  # bound memory under a username-spraying attack
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)
