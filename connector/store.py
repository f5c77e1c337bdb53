"""The Connector's local store: SQLite by default, one file in the data directory.

`Store` is the interface the rest of the Connector uses; `SqliteStore` implements it. A
server database can implement the same methods. Secrets arrive here already sealed by the
keystore; decrypted business data (messages, relationship content) is stored in clear,
because handing it to business systems is the Connector's job.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    address TEXT PRIMARY KEY,
    sealed_keys BLOB NOT NULL,
    device_id TEXT NOT NULL,
    username TEXT NOT NULL,
    sealed_password BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    address TEXT PRIMARY KEY,
    mailbox_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS handled_entries (
    address TEXT NOT NULL,
    mailbox_index INTEGER NOT NULL,
    PRIMARY KEY (address, mailbox_index)
);
CREATE TABLE IF NOT EXISTS relationships (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    peer TEXT NOT NULL,
    template_id TEXT NOT NULL,
    status TEXT NOT NULL,
    peer_keys TEXT,
    sealed_secret BLOB,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    content BLOB NOT NULL,
    mailbox_index INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at TEXT
);
"""


@dataclass(frozen=True)
class StoredIdentity:
    address: str
    sealed_keys: bytes
    device_id: str
    username: str
    sealed_password: bytes
    created_at: str


class Store(Protocol):
    def add_identity(self, identity: StoredIdentity) -> None: ...
    def identities(self) -> list[StoredIdentity]: ...
    def cursor(self, address: str) -> int: ...
    def mark_handled(self, address: str, index: int) -> bool: ...


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from the event loop's thread and worker threads in turn.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return list(self._db.execute(sql, params))

    def add_identity(self, identity: StoredIdentity) -> None:
        self._run(
            "INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?)",
            (identity.address, identity.sealed_keys, identity.device_id, identity.username,
             identity.sealed_password, identity.created_at),
        )  # fmt: skip

    def identities(self) -> list[StoredIdentity]:
        return [StoredIdentity(*row) for row in self._run("SELECT * FROM identities")]

    def cursor(self, address: str) -> int:
        rows = self._run("SELECT mailbox_index FROM cursors WHERE address = ?", (address,))
        return int(rows[0][0]) if rows else 0

    def mark_handled(self, address: str, index: int) -> bool:
        """Record that mailbox entry `index` was handled and move the cursor; False if it was
        handled before (so handling it again can be skipped: at-least-once made once)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.execute("INSERT INTO handled_entries VALUES (?, ?)", (address, index))
                self._db.execute(
                    "INSERT INTO cursors VALUES (?, ?) ON CONFLICT(address)"
                    " DO UPDATE SET mailbox_index = max(mailbox_index, excluded.mailbox_index)",
                    (address, index),
                )
                self._db.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                return False
