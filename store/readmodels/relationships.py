"""Relationships: tables `relationships`, `relationships_by_identity`, `relationship_peers`
and `relationship_audit`, written by the sharing projection
(streams/sharing_readmodels.py `SharingProjection`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.readmodels.base import Queries, columns


@dataclass(frozen=True, slots=True)
class Relationship:
    id: str
    template_id: str
    from_address: str
    to_address: str
    status: str
    creation_content: bytes | None
    creation_response_content: bytes | None
    reactivation_requested_by: str | None
    created_at: datetime

    def has_party(self, address: str) -> bool:
        return address in (self.from_address, self.to_address)

    def peer_of(self, address: str) -> str:
        return self.to_address if self.from_address == address else self.from_address


@dataclass(frozen=True, slots=True)
class Parties:
    """Who a relationship is between and where it stands, without its contents."""

    from_address: str
    to_address: str
    status: str

    def peer_of(self, address: str) -> str:
        return self.to_address if self.from_address == address else self.from_address


@dataclass(frozen=True, slots=True)
class AuditEntry:
    reason: str
    old_status: str | None
    new_status: str
    created_by: str
    created_by_device: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PeerLink:
    """One of an identity's relationships, seen from its side: who the other party is."""

    peer: str
    relationship_id: str
    status: str


_GET = f"SELECT {columns(Relationship)} FROM relationships WHERE id = ?"  # noqa: S608
_PARTIES = f"SELECT {columns(Parties)} FROM relationships WHERE id = ?"  # noqa: S608
_AUDIT = f"SELECT {columns(AuditEntry)} FROM relationship_audit WHERE relationship_id = ?"  # noqa: S608
_PEERS = f"SELECT {columns(PeerLink)} FROM relationship_peers WHERE address = ?"  # noqa: S608


class RelationshipReads(Queries):
    async def get(self, relationship_id: str) -> Relationship | None:
        return await self._one(Relationship, _GET, (relationship_id,))

    async def parties(self, relationship_id: str) -> Parties | None:
        return await self._one(Parties, _PARTIES, (relationship_id,))

    async def ids_of(self, address: str) -> list[str]:
        """Every relationship the identity is a party of."""
        rows = await self._run(
            "SELECT id FROM relationships_by_identity WHERE address = ?", (address,)
        )
        return [r.id for r in rows]

    async def audit(self, relationship_id: str) -> list[AuditEntry]:
        """The relationship's changes, oldest first."""
        return await self._all(AuditEntry, _AUDIT, (relationship_id,))

    async def peers_of(self, address: str) -> list[PeerLink]:
        return await self._all(PeerLink, _PEERS, (address,))

    async def with_peer(self, address: str, peer: str) -> list[PeerLink]:
        """The identity's relationships with one peer (one row per relationship the pair
        ever had); reads only that peer's rows, however many relationships it has."""
        return await self._all(PeerLink, f"{_PEERS} AND peer = ?", (address, peer))
