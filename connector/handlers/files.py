"""Files: ours, sealed and uploaded; a peer's, learned from the messages that attach them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from connector import crypto
from connector.crypto import DecryptionFailed
from connector.errors import Damaged
from connector.handlers.common import Context, now, open_json, to_json
from connector.repositories import FileRecord
from schemas import byte_fields


class Files:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def upload(
        self, data: bytes, name: str, mimetype: str, expires_at: datetime
    ) -> dict[str, Any]:
        """Sealed with a fresh key; the key travels only inside messages that attach it."""
        ctx = self.ctx
        key = crypto.new_content_key()
        ciphertext = crypto.seal(key, data, b"file")
        properties = crypto.seal(key, to_json({"name": name, "mimetype": mimetype}), b"file-props")
        created = await ctx.session.upload_file(
            ciphertext, hashlib.sha256(ciphertext).digest(), expires_at, properties
        )
        file_id = created["id"]
        sealed_key = ctx.keys.seal_file_key(key, file_id)
        ctx.data.files.add(
            FileRecord(
                id=file_id,
                address=ctx.address,
                owner=ctx.address,
                sealed_key=sealed_key,
                name=name,
                mimetype=mimetype,
                size=len(data),
                expires_at=created["expiresAt"],
                created_at=now(),
            )
        )
        return self.get(file_id)

    async def learn(self, file_id: str, key: bytes) -> None:
        """An attachment of a received message: its name and type, opened with its key."""
        ctx = self.ctx
        if ctx.data.files.knows(file_id):
            return
        meta = await ctx.session.file_metadata(file_id)
        props = open_json(key, meta["encryptedProperties"] or "", b"file-props", "file")
        size = max(0, int(meta["cipherSize"]) - crypto.SEAL_OVERHEAD)
        ctx.data.files.add_unless_known(
            FileRecord(
                id=file_id,
                address=ctx.address,
                owner=meta["createdBy"],
                sealed_key=ctx.keys.seal_file_key(key, file_id),
                name=str(props.get("name", "")),
                mimetype=str(props.get("mimetype", "")),
                size=size,
                expires_at=meta["expiresAt"],
                created_at=now(),
            )
        )

    async def download(self, file_id: str) -> tuple[bytes, dict[str, Any]]:
        """The plaintext, after checking the ciphertext against the uploader's hash."""
        ctx = self.ctx
        file = ctx.file(file_id)
        meta = await ctx.session.file_metadata(file_id)
        ciphertext = await ctx.session.file_content(file_id)
        if hashlib.sha256(ciphertext).digest() != byte_fields.decode(meta["cipherHash"]):
            raise Damaged(
                "error.connector.fileDamaged", "the file's content does not match its hash"
            )
        key = ctx.keys.file_key(file)
        try:
            return crypto.open_sealed(key, ciphertext, b"file"), self.get(file_id)
        except DecryptionFailed as exc:
            raise Damaged(
                "error.connector.cannotDecrypt", "the file does not open with its key"
            ) from exc

    def get(self, file_id: str) -> dict[str, Any]:
        return self._dto(self.ctx.file(file_id))

    def all(self) -> list[dict[str, Any]]:
        """Own uploads and files attached to received messages."""
        return [self._dto(f) for f in self.ctx.data.files.in_arrival_order()]

    def _dto(self, file: FileRecord) -> dict[str, Any]:
        return {
            "id": file.id,
            "owner": file.owner,
            "isOwn": file.owner == self.ctx.address,
            "name": file.name,
            "mimetype": file.mimetype,
            "size": file.size,
            "expiresAt": file.expires_at,
            "createdAt": file.created_at,
        }
