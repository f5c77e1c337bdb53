"""Identity deletion: tables `deletion_processes`, `peer_deletions` and `deleted_usernames`,
written by the deletion projection (streams/deletion_readmodels.py `DeletionProjection`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from store.readmodels.base import Queries, columns


@dataclass(frozen=True, slots=True)
class DeletionProcess:
    id: str
    # As the projection writes them: a process starts Active and may be Cancelled.
    status: Literal["Active", "Cancelled"]
    created_at: datetime
    created_by_device: str
    grace_period_ends_at: datetime
    cancelled_at: datetime | None
    cancelled_by_device: str | None


@dataclass(frozen=True, slots=True)
class PeerDeletion:
    """The other party's pending or finished deletion, as one party sees it."""

    status: Literal["ToBeDeleted", "Deleted"]
    deletion_date: datetime


_PROCESSES = f"SELECT {columns(DeletionProcess)} FROM deletion_processes WHERE address = ?"  # noqa: S608
_PEER = (
    f"SELECT {columns(PeerDeletion)} FROM peer_deletions"  # noqa: S608
    " WHERE relationship_id = ? AND address = ?"
)


class DeletionReads(Queries):
    async def processes_of(self, address: str) -> list[DeletionProcess]:
        return await self._all(DeletionProcess, _PROCESSES, (address,))

    async def process(self, address: str, process_id: str) -> DeletionProcess | None:
        """The identity's process with that id; None for another identity's."""
        return await self._one(DeletionProcess, f"{_PROCESSES} AND id = ?", (address, process_id))

    async def peer_deletion(self, relationship_id: str, viewer: str) -> PeerDeletion | None:
        return await self._one(PeerDeletion, _PEER, (relationship_id, viewer))

    async def username_deleted_at(self, username_hash: str) -> datetime | None:
        """When the identity that had this username (by its SHA-256, hex) was erased."""
        row = (
            await self._run(
                "SELECT deleted_at FROM deleted_usernames WHERE username_hash = ?", (username_hash,)
            )
        ).one()
        return None if row is None else row.deleted_at
