"""The Connector's business records, one repository per kind, over its SQLite file.

Each repository holds the records of one local identity and says in its method names what
it does (`add`, `get`, `latest_active_with`, `set_status` ...); the SQL stays in here.
`LocalData.change()` is the unit of work: the repositories it hands out write through one
transaction, and the webhook events announced in it (`UnitOfWork.announce`) are written to
the outbox in that same transaction, so an event is announced if and only if its change
was stored, also across crashes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from connector.store import SqliteDatabase, rows_of
from connector.webhooks import Outbox, WebhookTarget

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True)
class TemplateRecord:
    id: str
    address: str  # the local identity that holds it
    owner: str  # who created it: the local identity, or a peer
    sealed_key: bytes  # the content key, sealed by the keystore
    owner_keys: str  # the owner's public keys (JSON)
    content: str  # JSON, decrypted
    expires_at: str | None
    created_at: str


@dataclass(frozen=True)
class TokenRecord:
    id: str
    address: str
    reference: str
    content: str  # JSON, decrypted
    expires_at: str
    created_at: str


@dataclass(frozen=True)
class FileRecord:
    id: str
    address: str
    owner: str
    sealed_key: bytes  # the file's content key, sealed by the keystore
    name: str
    mimetype: str
    size: int  # plaintext bytes
    expires_at: str
    created_at: str


@dataclass(frozen=True)
class RelationshipRecord:
    id: str
    address: str
    peer: str
    template_id: str
    direction: str  # outgoing: we requested it; incoming: the peer did
    status: str
    peer_keys: str  # JSON
    sealed_secret: bytes
    creation_content: str  # JSON
    response_content: str | None  # JSON
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class MessageRecord:
    id: str
    address: str
    direction: str  # outgoing or incoming
    sender: str
    recipients: str  # JSON list of addresses
    content: str  # JSON, decrypted
    attachments: str  # JSON list of file ids
    mailbox_index: int | None  # incoming: the entry that brought it (their order)
    created_at: str


Params = tuple[Any, ...] | dict[str, Any]
R = TypeVar("R", bound="DataclassInstance")


class _Sql(Protocol):
    """Where a repository's statements run: the database (each statement on its own) or
    the connection of a transaction."""

    def rows(self, sql: str, params: Params = ()) -> Sequence[dict[str, Any]]: ...


class _InTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Params = ()) -> Sequence[dict[str, Any]]:
        # The database's lock is held by the transaction that yielded this connection.
        return rows_of(self._conn.execute(sql, params))


class _Repository(Generic[R]):
    """The records of type `record` in `table` that belong to the local identity."""

    table: str
    record: type[R]

    def __init__(self, sql: _Sql, address: str) -> None:
        self._sql = sql
        self._address = address

    def add(self, record: R) -> None:
        self._insert(record)

    def get(self, record_id: str) -> R | None:
        rows = self._own(" AND id = ?", (record_id,))
        return self.record(**rows[0]) if rows else None

    def _insert(self, record: R, *, unless_known: bool = False) -> None:
        names = [f.name for f in fields(record)]
        verb = "INSERT OR IGNORE" if unless_known else "INSERT"
        columns, marks = ", ".join(names), ", ".join("?" * len(names))
        sql = f"{verb} INTO {self.table} ({columns}) VALUES ({marks})"
        self._sql.rows(sql, astuple(record))

    def _own(
        self, where: str = "", params: tuple[Any, ...] = (), order: str = ""
    ) -> Sequence[dict[str, Any]]:
        """Rows of the local identity, `where` narrowing them further."""
        sql = f"SELECT * FROM {self.table} WHERE address = ?{where}"  # noqa: S608 (ours)
        if order:
            sql += f" ORDER BY {order}"
        return self._sql.rows(sql, (self._address, *params))

    def _in_order(self, order: str) -> list[R]:
        return [self.record(**r) for r in self._own(order=order)]


class Templates(_Repository[TemplateRecord]):
    table, record = "templates", TemplateRecord

    def add_unless_known(self, record: TemplateRecord) -> None:
        """A peer's template loaded again keeps what was stored the first time."""
        self._insert(record, unless_known=True)

    def in_creation_order(self) -> list[TemplateRecord]:
        return self._in_order("created_at")


class Tokens(_Repository[TokenRecord]):
    table, record = "tokens", TokenRecord

    def in_creation_order(self) -> list[TokenRecord]:
        return self._in_order("created_at")


class Files(_Repository[FileRecord]):
    table, record = "files", FileRecord

    def add_unless_known(self, record: FileRecord) -> None:
        """An attachment learned again (another message attaching it) is stored once."""
        self._insert(record, unless_known=True)

    def knows(self, file_id: str) -> bool:
        return bool(self._own(" AND id = ?", (file_id,)))

    def in_arrival_order(self) -> list[FileRecord]:
        return self._in_order("rowid")


class Relationships(_Repository[RelationshipRecord]):
    table, record = "relationships", RelationshipRecord

    def add_unless_known(self, record: RelationshipRecord) -> None:
        """A relationship whose id is known already keeps what was stored first."""
        self._insert(record, unless_known=True)

    def known(self, relationship_id: str) -> RelationshipRecord | None:
        """The relationship, whichever local identity holds it (its id is unique in the file):
        a change the backbone reports may be one this Connector requested itself."""
        rows = self._sql.rows("SELECT * FROM relationships WHERE id = ?", (relationship_id,))
        return RelationshipRecord(**rows[0]) if rows else None

    def latest_with(self, peer: str, *, active: bool) -> RelationshipRecord | None:
        """The most recently changed relationship with `peer` (only an active one, or any)."""
        for row in self._own(" AND peer = ?", (peer,), order="updated_at DESC"):
            if not active or row["status"] == "Active":
                return RelationshipRecord(**row)
        return None

    def in_creation_order(self) -> list[RelationshipRecord]:
        return self._in_order("created_at")

    def status(self, relationship_id: str) -> tuple[str, str | None]:
        """Its status and response content as stored now."""
        rows = self._sql.rows(
            "SELECT status, response_content FROM relationships WHERE id = ?", (relationship_id,)
        )
        return rows[0]["status"], rows[0]["response_content"]

    def set_status(self, relationship_id: str, status: str, response: str | None, at: str) -> None:
        """The new status; the response content only if one is given (it is never unset)."""
        self._sql.rows(
            "UPDATE relationships SET status = ?, response_content = coalesce(?,"
            " response_content), updated_at = ? WHERE id = ?",
            (status, response, at, relationship_id),
        )


class Messages(_Repository[MessageRecord]):
    table, record = "messages", MessageRecord

    def known(self, message_id: str) -> bool:
        """Whether any local identity has the message already (its id is unique in the file)."""
        return bool(self._sql.rows("SELECT 1 FROM messages WHERE id = ?", (message_id,)))

    def page(
        self, peer: str | None, direction: str | None, limit: int, offset: int
    ) -> list[MessageRecord]:
        """In the order this Connector learned of them: incoming ones in mailbox order."""
        rows = self._sql.rows(
            "SELECT * FROM messages WHERE address = :me"
            " AND (:direction IS NULL OR direction = :direction)"
            " AND (:peer IS NULL OR sender = :peer OR EXISTS"
            "      (SELECT 1 FROM json_each(recipients) WHERE value = :peer))"
            " ORDER BY rowid LIMIT :limit OFFSET :offset",
            {
                "me": self._address,
                "direction": direction,
                "peer": peer,
                "limit": limit,
                "offset": offset,
            },
        )
        return [MessageRecord(**r) for r in rows]


class _Records:
    """The repositories of one identity, all over the same statements."""

    def __init__(self, sql: _Sql, address: str) -> None:
        self.templates = Templates(sql, address)
        self.tokens = Tokens(sql, address)
        self.files = Files(sql, address)
        self.relationships = Relationships(sql, address)
        self.messages = Messages(sql, address)


class UnitOfWork(_Records):
    """Repositories inside one transaction, and the webhook events it announces."""

    def __init__(
        self, conn: sqlite3.Connection, address: str, outbox: Outbox, targets: list[WebhookTarget]
    ) -> None:
        super().__init__(_InTransaction(conn), address)
        self._conn = conn
        self._outbox = outbox
        self._targets = targets
        self.announced = 0

    def announce(self, event_type: str, payload: dict[str, Any]) -> None:
        """A webhook event, enqueued in the outbox through this transaction's connection."""
        self._outbox.enqueue(event_type, payload, self._targets, conn=self._conn)
        self.announced += 1


class LocalData(_Records):
    """The records of one local identity: single statements through the repositories here,
    changes that must commit together (and the events they announce) through `change()`."""

    def __init__(
        self,
        database: SqliteDatabase,
        address: str,
        outbox: Outbox,
        targets: list[WebhookTarget],
        on_event: Callable[[], None],
    ) -> None:
        super().__init__(database, address)
        self._database = database
        self._address = address
        self._outbox = outbox
        self._targets = targets
        self._on_event = on_event

    @contextlib.contextmanager
    def change(self) -> Iterator[UnitOfWork]:
        """One transaction; once it has committed, the webhook dispatcher is woken if an
        event was announced in it."""
        with self._database.transaction() as conn:
            work = UnitOfWork(conn, self._address, self._outbox, self._targets)
            yield work
        if work.announced:
            self._on_event()
