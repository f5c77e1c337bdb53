"""Read models of sync runs, their per-event errors, and the datawallet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cassandra.cluster import Session

from streams.writes import Write, write

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sync_runs (
        id text PRIMARY KEY,
        address text,
        device_id text,
        run_type text,
        from_index bigint,
        to_index bigint,
        retry_indexes list<bigint>,
        expires_at timestamp,
        created_at timestamp,
        status text,
        finalized_at timestamp)""",
    """CREATE TABLE IF NOT EXISTS sync_errors (
        address text, idx bigint, sync_run_id text, error_code text,
        PRIMARY KEY (address, idx, sync_run_id))""",
    """CREATE TABLE IF NOT EXISTS datawallet_modifications (
        address text,
        idx bigint,
        id text,
        object_identifier text,
        payload_category text,
        collection text,
        type text,
        encrypted_payload blob,
        created_at timestamp,
        created_by_device text,
        PRIMARY KEY (address, idx))""",
    """CREATE TABLE IF NOT EXISTS datawallets (address text PRIMARY KEY, version int)""",
]

Handler = Callable[[dict[str, Any], int], list[Write]]


class SyncProjection:
    def __init__(self, session: Session) -> None:
        self.session = session
        q = session.prepare
        self._started = q(
            "INSERT INTO sync_runs (id, address, device_id, run_type, from_index, to_index,"
            " retry_indexes, expires_at, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " 'Running') USING TIMESTAMP ?"
        )
        self._status = q(
            "UPDATE sync_runs USING TIMESTAMP ? SET status = ?, finalized_at = ? WHERE id = ?"
        )
        self._error = q(
            "INSERT INTO sync_errors (address, idx, sync_run_id, error_code) VALUES (?, ?, ?, ?)"
            " USING TIMESTAMP ?"
        )
        self._version = q(
            "INSERT INTO datawallets (address, version) VALUES (?, ?) USING TIMESTAMP ?"
        )
        self._modification = q(
            "INSERT INTO datawallet_modifications (address, idx, id, object_identifier,"
            " payload_category, collection, type, encrypted_payload, created_at,"
            " created_by_device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )

    def handlers(self) -> dict[str, Handler]:
        return {
            "SyncRunStarted": self._run_started,
            "SyncRunExpired": self._run_expired,
            "SyncRunFinalized": self._run_finalized,
            "DatawalletModificationsAdded": self._modifications,
        }

    def _run_started(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(
            write(
                self._started,
                b["sync_run_id"],
                b["address"],
                b["device_id"],
                b["run_type"],
                b["from_index"],
                b["to_index"],
                list(b["retry_indexes"]),
                b["expires_at"],
                b["created_at"],
                ts,
            )
        )
        return out

    def _run_expired(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(write(self._status, ts, "Expired", b["expired_at"], b["sync_run_id"]))
        return out

    def _run_finalized(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        out.append(write(self._status, ts, "Finalized", b["finalized_at"], b["sync_run_id"]))
        for error in b["errors"]:
            out.append(
                write(
                    self._error,
                    b["address"],
                    error["index"],
                    b["sync_run_id"],
                    error["error_code"],
                    ts,
                )
            )
        if b["new_datawallet_version"] is not None:
            out.append(write(self._version, b["address"], b["new_datawallet_version"], ts))
        return out

    def _modifications(self, b: dict[str, Any], ts: int) -> list[Write]:
        out: list[Write] = []
        for m in b["modifications"]:
            out.append(
                write(
                    self._modification,
                    b["address"],
                    m["index"],
                    m["id"],
                    m["object_identifier"],
                    m["payload_category"],
                    m["collection"],
                    m["type"],
                    m["encrypted_payload"],
                    b["created_at"],
                    b["device_id"],
                    ts,
                )
            )
        return out
