"""Read models of identity deletion (issue 22), and their projection.

- `deletion_processes`: an identity's own processes, for `Identities/Self/DeletionProcesses`;
  erased with the identity.
- `due_deletions`: every identity in its grace period, by its record key (a keyed hash, not
  its address), which the workers poll for the ones whose period is over
  (streams/deletion_final.py). One partition: deletions are rare, and the poll reads it
  whole. `deletion_leases` keeps the workers from all sending the same final command.
- `peer_deletions`: for each relationship whose other party is being (or was) deleted, by
  relationship and the remaining party (who sees it, as upstream's `peerDeletionInfo`):
  ToBeDeleted with the grace period's end, then Deleted with the time. No address of the
  deleted identity, so it outlives it; replayable from `PeerDeleted` (the peer's key).
- `deleted_identities` / `deleted_usernames`: the audit record, from `IdentityDeleted`,
  which is sealed with the system key and so stays readable (and replayable) after the
  identity's data key is gone. Only SHA-256 hashes of the address and usernames.

Writes carry the identity's version as their timestamp like the other read models, so
a cancelled and restarted process projects in order on a redelivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cassandra.cluster import Session

from streams.writes import Write, write

DUE_BUCKET = 0

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS deletion_processes (
        address text,
        id text,
        status text,
        created_at timestamp,
        created_by_device text,
        grace_period_ends_at timestamp,
        cancelled_at timestamp,
        cancelled_by_device text,
        PRIMARY KEY (address, id))""",
    """CREATE TABLE IF NOT EXISTS due_deletions (
        bucket int,
        identity_key text,
        deletion_process_id text,
        due_at timestamp,
        PRIMARY KEY (bucket, identity_key))""",
    """CREATE TABLE IF NOT EXISTS deletion_leases (identity_key text PRIMARY KEY, owner text)""",
    """CREATE TABLE IF NOT EXISTS deleted_identities (
        address_hash text PRIMARY KEY,
        deletion_process_id text,
        deletion_started_at timestamp,
        deleted_at timestamp,
        username_hashes list<text>)""",
    # Hashes of destroyed data keys' ids: a worker waiting for a key that is not in
    # `data_keys` stops waiting at once when it finds it here (streams/data_keys.py).
    """CREATE TABLE IF NOT EXISTS shredded_keys (key_hash text PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS peer_deletions (
        relationship_id text,
        address text,
        status text,
        deletion_date timestamp,
        PRIMARY KEY (relationship_id, address))""",
    """CREATE TABLE IF NOT EXISTS deleted_usernames (
        username_hash text PRIMARY KEY,
        deleted_at timestamp)""",
]

Handler = Callable[[dict[str, Any], int], list[Write]]


class DeletionProjection:
    def __init__(self, session: Session) -> None:
        self.session = session
        q = session.prepare
        self._process = q(
            "INSERT INTO deletion_processes (address, id, status, created_at, created_by_device,"
            " grace_period_ends_at) VALUES (?, ?, 'Active', ?, ?, ?) USING TIMESTAMP ?"
        )
        self._cancelled = q(
            "UPDATE deletion_processes USING TIMESTAMP ? SET status = 'Cancelled',"
            " cancelled_at = ?, cancelled_by_device = ? WHERE address = ? AND id = ?"
        )
        self._due = q(
            "INSERT INTO due_deletions (bucket, identity_key, deletion_process_id, due_at)"
            " VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._not_due = q(
            "DELETE FROM due_deletions USING TIMESTAMP ? WHERE bucket = ? AND identity_key = ?"
        )
        # Without a timestamp (the current time, far above any version): once deleted, an
        # identity's due row can never come back from a redelivered older event.
        self._done = q("DELETE FROM due_deletions WHERE bucket = ? AND identity_key = ?")
        self._audit = q(
            "INSERT INTO deleted_identities (address_hash, deletion_process_id,"
            " deletion_started_at, deleted_at, username_hashes) VALUES (?, ?, ?, ?, ?)"
        )
        self._peer = q(
            "INSERT INTO peer_deletions (relationship_id, address, status, deletion_date)"
            " VALUES (?, ?, 'ToBeDeleted', ?) USING TIMESTAMP ?"
        )
        self._peer_cancelled = q(
            "DELETE FROM peer_deletions USING TIMESTAMP ? WHERE relationship_id = ? AND address = ?"
        )
        # Without a timestamp, as `_done`: Deleted is final, no redelivered start or
        # cancellation (whose timestamps are the identity's versions) may undo it.
        self._peer_deleted = q(
            "INSERT INTO peer_deletions (relationship_id, address, status, deletion_date)"
            " VALUES (?, ?, 'Deleted', ?)"
        )
        self._shredded = q("INSERT INTO shredded_keys (key_hash) VALUES (?)")
        self._username = q(
            "INSERT INTO deleted_usernames (username_hash, deleted_at) VALUES (?, ?)"
        )

    def handlers(self) -> dict[str, Handler]:
        return {
            "IdentityDeletionStarted": self._started,
            "IdentityDeletionCancelled": self._cancelled_process,
            "IdentityDeleted": self._deleted,
            "PeerDeleted": self._peer_gone,
        }

    def _started(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(
            write(
                self._process,
                b["address"],
                b["deletion_process_id"],
                b["created_at"],
                b["device_id"],
                b["grace_period_ends_at"],
                ts,
            )
        )
        out.append(
            write(
                self._due,
                DUE_BUCKET,
                b["identity_key"],
                b["deletion_process_id"],
                b["grace_period_ends_at"],
                ts,
            )
        )
        for p in b["peers"]:
            out.append(
                write(self._peer, p["relationship_id"], p["address"], b["grace_period_ends_at"], ts)
            )
        return out

    def _cancelled_process(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(
            write(
                self._cancelled,
                ts,
                b["cancelled_at"],
                b["device_id"],
                b["address"],
                b["deletion_process_id"],
            )
        )
        out.append(write(self._not_due, ts, DUE_BUCKET, b["identity_key"]))
        for p in b["peers"]:
            out.append(write(self._peer_cancelled, ts, p["relationship_id"], p["address"]))
        return out

    def _peer_gone(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(write(self._peer_deleted, b["relationship_id"], b["address"], b["deleted_at"]))
        return out

    def _deleted(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(
            write(
                self._audit,
                b["address_hash"],
                b["deletion_process_id"],
                b["deletion_started_at"],
                b["deleted_at"],
                list(b["username_hashes"]),
            )
        )
        out.append(write(self._shredded, b["data_key_hash"]))
        for username_hash in b["username_hashes"]:
            out.append(write(self._username, username_hash, b["deleted_at"]))
        out.append(write(self._done, DUE_BUCKET, b["identity_key"]))
        return out
