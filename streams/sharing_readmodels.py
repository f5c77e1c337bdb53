"""Read models of files, tokens, relationship templates and relationships, and their
projection.

Writes carry `USING TIMESTAMP <aggregate version>` like the identity read models, so a
redelivered event changes nothing. Tokens and templates with an expiry are written with a
matching TTL: Cassandra drops them when they expire, and the API filters on `expires_at`
as well, since TTLs are coarse and a row may outlive its second.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from streams.writes import Write, write

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS files (
        id text PRIMARY KEY,
        owner text,
        owner_device text,
        cipher_size bigint,
        cipher_hash blob,
        content_sha256 blob,
        chunk_count int,
        encrypted_properties blob,
        created_at timestamp,
        expires_at timestamp)""",
    # The blob store: written by the API before the UploadFile command, with the file's TTL.
    # Chunks are readable only once the `files` row exists (the event was projected).
    """CREATE TABLE IF NOT EXISTS file_chunks (
        file_id text, chunk int, data blob, PRIMARY KEY (file_id, chunk))""",
    """CREATE TABLE IF NOT EXISTS tokens (
        id text PRIMARY KEY,
        owner text,
        owner_device text,
        content blob,
        created_at timestamp,
        expires_at timestamp,
        for_identity text,
        password_hash text)""",
    """CREATE TABLE IF NOT EXISTS tokens_by_owner (
        owner text, id text, PRIMARY KEY (owner, id))""",
    """CREATE TABLE IF NOT EXISTS templates (
        id text PRIMARY KEY,
        owner text,
        owner_device text,
        content blob,
        created_at timestamp,
        expires_at timestamp,
        max_allocations int,
        for_identity text,
        password_hash text)""",
    """CREATE TABLE IF NOT EXISTS templates_by_owner (
        owner text, id text, PRIMARY KEY (owner, id))""",
    """CREATE TABLE IF NOT EXISTS template_allocations (
        template_id text, requester text, relationship_id text,
        PRIMARY KEY (template_id, requester))""",
    """CREATE TABLE IF NOT EXISTS relationships (
        id text PRIMARY KEY,
        template_id text,
        from_address text,
        from_device text,
        to_address text,
        status text,
        creation_content blob,
        creation_response_content blob,
        reactivation_requested_by text,
        created_at timestamp)""",
    """CREATE TABLE IF NOT EXISTS relationships_by_identity (
        address text, id text, PRIMARY KEY (address, id))""",
    # Each party's view of its relationships by peer: the message guard reads only the rows
    # of the recipients, however many relationships the sender has.
    """CREATE TABLE IF NOT EXISTS relationship_peers (
        address text, peer text, relationship_id text, status text,
        PRIMARY KEY (address, peer, relationship_id))""",
    """CREATE TABLE IF NOT EXISTS relationship_audit (
        relationship_id text,
        version int,
        reason text,
        old_status text,
        new_status text,
        created_by text,
        created_by_device text,
        created_at timestamp,
        PRIMARY KEY (relationship_id, version))""",
]

# Enmeshed's audit log reasons, by action.
AUDIT_REASONS = {
    "Accept": "AcceptanceOfCreation",
    "Reject": "RejectionOfCreation",
    "Revoke": "RevocationOfCreation",
    "Terminate": "Termination",
    "RequestReactivation": "ReactivationRequested",
    "AcceptReactivation": "AcceptanceOfReactivation",
    "RejectReactivation": "RejectionOfReactivation",
    "RevokeReactivation": "RevocationOfReactivation",
    "Decompose": "Decomposition",
}

Handler = Callable[[dict[str, Any], int], list[Write]]


def _ttl(expires_at: datetime | None) -> int | None:
    """Seconds left until `expires_at`; 0 when it has passed; None for no expiry."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return max(0, int((expires_at - datetime.now(UTC)).total_seconds()) + 1)


class SharingProjection:
    def __init__(self, session: Session) -> None:
        self.session = session
        q = session.prepare
        # TTL 0 means "no expiry" in CQL, which is what a missing expires_at asks for.
        self._file = q(
            "INSERT INTO files (id, owner, owner_device, cipher_size, cipher_hash,"
            " content_sha256, chunk_count, encrypted_properties, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        )
        self._token = q(
            "INSERT INTO tokens (id, owner, owner_device, content, created_at, expires_at,"
            " for_identity, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " USING TTL ? AND TIMESTAMP ?"
        )
        self._token_owner = q(
            "INSERT INTO tokens_by_owner (owner, id) VALUES (?, ?) USING TTL ? AND TIMESTAMP ?"
        )
        self._token_gone = q("DELETE FROM tokens USING TIMESTAMP ? WHERE id = ?")
        self._token_owner_gone = q(
            "DELETE FROM tokens_by_owner USING TIMESTAMP ? WHERE owner = ? AND id = ?"
        )
        self._template = q(
            "INSERT INTO templates (id, owner, owner_device, content, created_at, expires_at,"
            " max_allocations, for_identity, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " USING TTL ? AND TIMESTAMP ?"
        )
        self._template_owner = q(
            "INSERT INTO templates_by_owner (owner, id) VALUES (?, ?) USING TTL ? AND TIMESTAMP ?"
        )
        self._template_gone = q("DELETE FROM templates USING TIMESTAMP ? WHERE id = ?")
        self._template_owner_gone = q(
            "DELETE FROM templates_by_owner USING TIMESTAMP ? WHERE owner = ? AND id = ?"
        )
        self._allocation = q(
            "INSERT INTO template_allocations (template_id, requester, relationship_id)"
            " VALUES (?, ?, ?) USING TIMESTAMP ?"
        )
        self._allocation_gone = q(
            "DELETE FROM template_allocations USING TIMESTAMP ?"
            " WHERE template_id = ? AND requester = ?"
        )
        self._relationship = q(
            "INSERT INTO relationships (id, template_id, from_address, from_device, to_address,"
            " status, creation_content, created_at) VALUES (?, ?, ?, ?, ?, 'Pending', ?, ?)"
            " USING TIMESTAMP ?"
        )
        self._relationship_of = q(
            "INSERT INTO relationships_by_identity (address, id) VALUES (?, ?) USING TIMESTAMP ?"
        )
        self._peer_status = q(
            "INSERT INTO relationship_peers (address, peer, relationship_id, status)"
            " VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._status = q(
            "UPDATE relationships USING TIMESTAMP ?"
            " SET status = ?, reactivation_requested_by = ? WHERE id = ?"
        )
        self._response = q(
            "UPDATE relationships USING TIMESTAMP ? SET creation_response_content = ? WHERE id = ?"
        )
        self._audit_entry = q(
            "INSERT INTO relationship_audit (relationship_id, version, reason, old_status,"
            " new_status, created_by, created_by_device, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )

    def handlers(self) -> dict[str, Handler]:
        return {
            "FileUploaded": self._file_uploaded,
            "TokenCreated": self._token_created,
            "TokenDeleted": self._token_deleted,
            "TemplateCreated": self._template_created,
            "TemplateDeleted": self._template_deleted,
            "TemplateAllocated": self._allocated,
            "TemplateAllocationReleased": self._released,
            "RelationshipCreated": self._relationship_created,
            "RelationshipChanged": self._relationship_changed,
        }

    def _file_uploaded(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        ttl = _ttl(b["expires_at"])
        if ttl == 0:
            return out
        fields = (
            "file_id",
            "owner",
            "owner_device",
            "cipher_size",
            "cipher_hash",
            "content_sha256",
            "chunk_count",
            "encrypted_properties",
            "created_at",
            "expires_at",
        )
        out.append(write(self._file, *(b[f] for f in fields), ttl, ts))
        return out

    def _token_created(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        ttl = _ttl(b["expires_at"])
        if ttl == 0:
            return out  # expired before it was projected: nothing to show
        out.append(
            write(
                self._token,
                b["token_id"],
                b["owner"],
                b["owner_device"],
                b["content"],
                b["created_at"],
                b["expires_at"],
                b["for_identity"],
                b["password_hash"],
                ttl,
                ts,
            )
        )
        out.append(write(self._token_owner, b["owner"], b["token_id"], ttl, ts))
        return out

    def _token_deleted(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(write(self._token_gone, ts, b["token_id"]))
        out.append(write(self._token_owner_gone, ts, b["owner"], b["token_id"]))
        return out

    def _template_created(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        ttl = _ttl(b["expires_at"])
        if ttl == 0:
            return out
        ttl = ttl or 0  # None: no expiry
        out.append(
            write(
                self._template,
                b["template_id"],
                b["owner"],
                b["owner_device"],
                b["content"],
                b["created_at"],
                b["expires_at"],
                b["max_allocations"],
                b["for_identity"],
                b["password_hash"],
                ttl,
                ts,
            )
        )
        out.append(write(self._template_owner, b["owner"], b["template_id"], ttl, ts))
        return out

    def _template_deleted(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(write(self._template_gone, ts, b["template_id"]))
        out.append(write(self._template_owner_gone, ts, b["owner"], b["template_id"]))
        return out

    def _allocated(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(
            write(self._allocation, b["template_id"], b["requester"], b["relationship_id"], ts)
        )
        return out

    def _released(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(write(self._allocation_gone, ts, b["template_id"], b["requester"]))
        return out

    def _relationship_created(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(
            write(
                self._relationship,
                b["relationship_id"],
                b["template_id"],
                b["from_address"],
                b["from_device"],
                b["to_address"],
                b["creation_content"],
                b["created_at"],
                ts,
            )
        )
        for address in (b["from_address"], b["to_address"]):
            out.append(write(self._relationship_of, address, b["relationship_id"], ts))
        out += self._peers(b, "Pending", ts)
        out.append(
            write(
                self._audit_entry,
                b["relationship_id"],
                ts,
                "Creation",
                None,
                "Pending",
                b["from_address"],
                b["from_device"],
                b["created_at"],
                ts,
            )
        )
        return out

    def _peers(self, b: dict[str, Any], status: str, ts: int) -> list[Write]:
        a, z, rid = b["from_address"], b["to_address"], b["relationship_id"]
        return [
            write(self._peer_status, a, z, rid, status, ts),
            write(self._peer_status, z, a, rid, status, ts),
        ]

    def _relationship_changed(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        rid = b["relationship_id"]
        out.append(write(self._status, ts, b["status"], b["reactivation_requested_by"], rid))
        out += self._peers(b, b["status"], ts)
        if b["action"] == "Accept" and b["content"] is not None:
            out.append(write(self._response, ts, b["content"], rid))
        reason = AUDIT_REASONS[b["action"]]
        out.append(
            write(
                self._audit_entry,
                rid,
                ts,
                reason,
                b["old_status"],
                b["status"],
                b["actor"],
                b["actor_device"],
                b["occurred_at"],
                ts,
            )
        )
        return out
