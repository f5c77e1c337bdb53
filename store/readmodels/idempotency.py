"""Idempotency keys: table `idempotency_keys`, written by the identity projection
(streams/readmodels.py `Projection`) when it forwards a keyed command's reply; rows expire
after backbone.idempotency.WINDOW_S."""

from __future__ import annotations

from store.readmodels.base import Queries


class IdempotencyReads(Queries):
    async def fingerprint(self, key_id: str) -> str | None:
        """The body fingerprint the key was first accepted with; None for a key not seen
        (or no longer remembered)."""
        row = (
            await self._run("SELECT fingerprint FROM idempotency_keys WHERE key_id = ?", (key_id,))
        ).one()
        return None if row is None else str(row.fingerprint)
