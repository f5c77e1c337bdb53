"""Files: end-to-end encrypted content (an attachment, a document) shared by id until it
expires. The bytes live in the blob store (the `file_chunks` table, written by the API
before the command); the log records that the file exists, who owns it and the hash that
pins its content, so a replay rebuilds every read model but the blobs themselves."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.decision import Rejection, unknown_command
from schemas.commands import Command, UploadFile
from schemas.events import Event, FileUploaded

ALREADY_EXISTS = "error.platform.validation.file.alreadyExists"


@dataclass(frozen=True, slots=True)
class FileState:
    version: int = 0
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "owner": self.owner}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> FileState:
        return cls(**{k: v for k, v in (raw or {}).items() if k != "handled"})


def decide(state: FileState, command: Command, now: datetime) -> list[Event] | Rejection:
    match command:
        case UploadFile():
            if state.version > 0:
                return Rejection(ALREADY_EXISTS, "a file with this id exists")
            return [
                FileUploaded(
                    file_id=command.file_id,
                    owner=command.owner,
                    owner_device=command.owner_device,
                    cipher_size=command.cipher_size,
                    cipher_hash=command.cipher_hash,
                    content_sha256=command.content_sha256,
                    chunk_count=command.chunk_count,
                    expires_at=command.expires_at,
                    encrypted_properties=command.encrypted_properties,
                    created_at=command.requested_at,
                )
            ]
    return unknown_command(command)


def evolve(state: FileState, event: Event) -> FileState:
    if isinstance(event, FileUploaded):
        state = replace(state, owner=event.owner)
    return replace(state, version=state.version + 1)
