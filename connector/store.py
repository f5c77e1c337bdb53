"""The Connector's local store: SQLite by default, one file in the data directory.

`Store` is what the mailbox consumer and the CLI need (identities, the mailbox cursor);
`SqliteStore` implements it. The business records (templates, tokens, files, relationships,
messages) are reached through the repositories in `connector.repositories`, over the same
database. Secrets arrive here already sealed by the keystore; decrypted business data
(messages, relationship content) is stored in clear, because handing it to business systems
is the Connector's job.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import astuple, dataclass
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
CREATE TABLE IF NOT EXISTS templates (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,          -- the local identity that holds it
    owner TEXT NOT NULL,            -- who created it (the local identity, or a peer)
    sealed_key BLOB NOT NULL,       -- the content key, sealed by the keystore
    owner_keys TEXT NOT NULL,       -- the owner's public keys (JSON)
    content TEXT NOT NULL,          -- JSON, decrypted
    expires_at TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    reference TEXT NOT NULL,
    content TEXT NOT NULL,          -- JSON, decrypted
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id TEXT NOT NULL,
    address TEXT NOT NULL,
    owner TEXT NOT NULL,
    sealed_key BLOB NOT NULL,       -- the file's content key, sealed by the keystore
    name TEXT NOT NULL,
    mimetype TEXT NOT NULL,
    size INTEGER NOT NULL,          -- plaintext bytes
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (id, address)
);
CREATE TABLE IF NOT EXISTS relationships (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    peer TEXT NOT NULL,
    template_id TEXT NOT NULL,
    direction TEXT NOT NULL,        -- outgoing: we requested it; incoming: the peer did
    status TEXT NOT NULL,
    peer_keys TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    creation_content TEXT NOT NULL,
    response_content TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS relationships_by_peer ON relationships (address, peer);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    direction TEXT NOT NULL,        -- outgoing or incoming
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,       -- JSON list of addresses
    content TEXT NOT NULL,          -- JSON, decrypted
    attachments TEXT NOT NULL,      -- JSON list of file ids
    mailbox_index INTEGER,          -- incoming: the entry that brought it (their order)
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_in_order ON messages (address, mailbox_index, created_at);
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
    """What the Connector needs of a database besides its business records; a server
    database implements the same methods."""

    def add_identity(self, identity: StoredIdentity) -> None: ...
    def identities(self) -> list[StoredIdentity]: ...
    def cursor(self, address: str) -> int: ...
    def mark_handled(self, address: str, index: int) -> bool: ...
    def ping(self) -> None: ...


class _Row(dict[str, Any]):
    """A row as a dict; attribute access too, for readable call sites."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def rows_of(cursor: sqlite3.Cursor) -> list[_Row]:
    names = [d[0] for d in cursor.description or ()]
    return [_Row(zip(names, row, strict=True)) for row in cursor]


class SqliteDatabase:
    """One SQLite file in WAL mode with its schema, and one connection to it, used from the
    event loop's thread and worker threads in turn (hence the lock). The store and the
    webhook outbox each hold one; WAL lets the two connections share the file."""

    def __init__(self, path: Path, schema: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(schema)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def run(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Any]:
        with self._lock:
            return list(self._db.execute(sql, params))

    def rows(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[_Row]:
        """Rows with access by column name; `params` by position or by `:name`."""
        with self._lock:
            return rows_of(self._db.execute(sql, params))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All statements on the yielded connection commit together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


class SqliteStore:
    def __init__(self, path: Path) -> None:
        # The repositories of the business records share this database (and its lock).
        self.database = SqliteDatabase(path, SCHEMA)

    def close(self) -> None:
        self.database.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self.database.run(sql, params)

    def ping(self) -> None:
        """Raise when the database cannot answer (the health check)."""
        self._run("SELECT 1")

    def add_identity(self, identity: StoredIdentity) -> None:
        self._run("INSERT INTO identities VALUES (?, ?, ?, ?, ?, ?)", astuple(identity))

    def identities(self) -> list[StoredIdentity]:
        return [StoredIdentity(*row) for row in self._run("SELECT * FROM identities")]

    def cursor(self, address: str) -> int:
        rows = self._run("SELECT mailbox_index FROM cursors WHERE address = ?", (address,))
        return int(rows[0][0]) if rows else 0

    def mark_handled(self, address: str, index: int) -> bool:
        """Record that mailbox entry `index` was handled and move the cursor; False if it was
        handled before (so handling it again can be skipped: at-least-once made once)."""
        try:
            with self.database.transaction() as db:
                db.execute("INSERT INTO handled_entries VALUES (?, ?)", (address, index))
                db.execute(
                    "INSERT INTO cursors VALUES (?, ?) ON CONFLICT(address)"
                    " DO UPDATE SET mailbox_index = max(mailbox_index, excluded.mailbox_index)",
                    (address, index),
                )
        except sqlite3.IntegrityError:
            return False
        return True
