"""Enmeshed's sync: tables `sync_runs`, `sync_errors`, `datawallet_modifications` and
`datawallets`, written by the sync projection (streams/sync_readmodels.py
`SyncProjection`). Modification indexes are as stored (1, 2, 3 ...), not as on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.readmodels.base import Queries, columns


@dataclass(frozen=True, slots=True)
class SyncRun:
    id: str
    address: str
    device_id: str
    run_type: str
    # The run covers the mailbox entries after `from_index` up to `to_index`, and the
    # earlier ones it retries.
    from_index: int
    to_index: int
    retry_indexes: list[int] | None
    expires_at: datetime
    created_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class ModificationRef:
    id: str
    idx: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Modification:
    id: str
    idx: int
    object_identifier: str
    payload_category: str | None
    collection: str
    type: str
    encrypted_payload: bytes | None
    created_at: datetime
    created_by_device: str


_RUN = f"SELECT {columns(SyncRun)} FROM sync_runs WHERE id = ?"  # noqa: S608
_NEWEST = (
    f"SELECT {columns(ModificationRef)} FROM datawallet_modifications"  # noqa: S608
    " WHERE address = ? ORDER BY idx DESC LIMIT ?"
)
_AFTER = (
    f"SELECT {columns(Modification)} FROM datawallet_modifications"  # noqa: S608
    " WHERE address = ? AND idx > ?"
)


class SyncReads(Queries):
    async def run(self, run_id: str) -> SyncRun | None:
        """The run, whoever it belongs to: the caller checks `address`."""
        return await self._one(SyncRun, _RUN, (run_id,))

    async def error_counts(self, address: str) -> dict[int, int]:
        """How many times each mailbox index was reported as failed by a sync run."""
        counts: dict[int, int] = {}
        for row in await self._run("SELECT idx FROM sync_errors WHERE address = ?", (address,)):
            counts[row.idx] = counts.get(row.idx, 0) + 1
        return counts

    async def newest_modifications(self, address: str, limit: int) -> list[ModificationRef]:
        """The identity's last `limit` datawallet modifications, newest first."""
        return await self._all(ModificationRef, _NEWEST, (address, limit))

    async def modifications_after(self, address: str, index: int) -> list[Modification]:
        """The datawallet modifications after the stored index `index`, oldest first."""
        return await self._all(Modification, _AFTER, (address, index))

    async def datawallet_version(self, address: str) -> int:
        """0 for an identity that never upgraded its datawallet."""
        row = (
            await self._run("SELECT version FROM datawallets WHERE address = ?", (address,))
        ).one()
        return int(row.version) if row and row.version is not None else 0
