"""Files: end-to-end encrypted content (an attachment, a document) shared by id until it
expires. The bytes live in the blob store (the `file_chunks` table, written by the API
before the command); the log records that the file exists, who owns it and the hash that
pins its content, so a replay rebuilds every read model but the blobs themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.decision import Event, Rejection

ALREADY_EXISTS = "error.platform.validation.file.alreadyExists"
FIELDS = (
    "file_id",
    "owner",
    "owner_device",
    "cipher_size",
    "cipher_hash",
    "content_sha256",
    "chunk_count",
    "expires_at",
    "encrypted_properties",
)


@dataclass
class FileState:
    version: int = 0
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> FileState:
        return cls(**{k: v for k, v in (raw or {}).items() if k != "handled"})


def decide(
    state: FileState, name: str, cmd: dict[str, Any], now: datetime
) -> list[Event] | Rejection:
    if name == "UploadFile":
        if state.version > 0:
            return Rejection(ALREADY_EXISTS, "a file with this id exists")
        return [
            ("FileUploaded", {**{k: cmd[k] for k in FIELDS}, "created_at": cmd["requested_at"]})
        ]
    return Rejection("error.platform.validation.unknownCommand", f"unknown command {name}")


def evolve(state: FileState, name: str, event: dict[str, Any]) -> FileState:
    if name == "FileUploaded":
        state.owner = event["owner"]
    state.version += 1
    return state
