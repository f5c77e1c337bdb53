"""Objects shared by id: tokens and relationship templates (tables `tokens`,
`tokens_by_owner`, `templates`, `templates_by_owner`) and files (`files`, `file_chunks`),
written by the sharing projection (streams/sharing_readmodels.py `SharingProjection`).

One exception to "the API never writes Cassandra": a file's bytes, stored in chunks by the
API before the `UploadFile` command that pins their hash (`Files.store_chunk`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from store.readmodels.base import Queries, SessionOf, columns, is_past


class SharedObject(Protocol):
    """What tokens and templates share: who owns them and who may read them."""

    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def expires_at(self) -> datetime | None: ...
    # Only this identity (and the owner) may read it; anyone holding the id when None.
    @property
    def for_identity(self) -> str | None: ...
    @property
    def password_hash(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    owner: str
    owner_device: str
    content: bytes
    created_at: datetime
    expires_at: datetime
    for_identity: str | None
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    owner: str
    owner_device: str
    content: bytes
    created_at: datetime
    expires_at: datetime | None
    max_allocations: int | None
    for_identity: str | None
    password_hash: str | None


Shared = TypeVar("Shared", Token, Template)


class SharedObjects(Queries, Generic[Shared]):
    """One kind of shared object: its table and its by-owner index."""

    def __init__(
        self, session_of: SessionOf, record: type[Shared], table: str, by_owner: str
    ) -> None:
        super().__init__(session_of)
        self._record: type[Shared] = record
        # Table names are constants of this module, never request input.
        self._get = f"SELECT {columns(record)} FROM {table} WHERE id = ?"  # noqa: S608
        self._owned = f"SELECT id FROM {by_owner} WHERE owner = ?"  # noqa: S608

    async def get(self, object_id: str) -> Shared | None:
        """The object, or None when it does not exist or has expired (TTLs are coarse)."""
        found = await self._one(self._record, self._get, (object_id,))
        return None if found is None or is_past(found.expires_at) else found

    async def owned_by(self, owner: str, ids: set[str] | None = None) -> list[Shared]:
        """The owner's objects that have not expired (of `ids` only, when given)."""
        found = []
        for ref in await self._run(self._owned, (owner,)):
            if ids is None or ref.id in ids:
                shared = await self.get(ref.id)
                if shared is not None:
                    found.append(shared)
        return found


def tokens(session_of: SessionOf) -> SharedObjects[Token]:
    return SharedObjects(session_of, Token, "tokens", "tokens_by_owner")


def templates(session_of: SessionOf) -> SharedObjects[Template]:
    return SharedObjects(session_of, Template, "templates", "templates_by_owner")


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    owner: str
    owner_device: str
    cipher_size: int
    cipher_hash: bytes
    # What the chunks must hash to: checked before any byte is handed out.
    content_sha256: bytes
    chunk_count: int
    encrypted_properties: bytes | None
    created_at: datetime
    expires_at: datetime


_FILE = f"SELECT {columns(StoredFile)} FROM files WHERE id = ?"  # noqa: S608


class Files(Queries):
    async def get(self, file_id: str) -> StoredFile | None:
        """The file, or None when it does not exist (yet: its event is not projected) or
        has expired."""
        found = await self._one(StoredFile, _FILE, (file_id,))
        return None if found is None or is_past(found.expires_at) else found

    async def content(self, file_id: str) -> bytes:
        """The file's chunks joined in order (check them against `content_sha256`)."""
        chunks = await self._run(
            "SELECT chunk, data FROM file_chunks WHERE file_id = ?", (file_id,)
        )
        return b"".join(c.data for c in chunks)

    async def store_chunk(self, file_id: str, number: int, data: bytes, ttl_s: int) -> None:
        await self._run(
            "INSERT INTO file_chunks (file_id, chunk, data) VALUES (?, ?, ?) USING TTL ?",
            (file_id, number, data, ttl_s),
        )
