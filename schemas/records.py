"""The records nested in commands and events, one type per Avro record name.

Written by `python -m schemas.typegen` from schemas/avsc/; edit the schemas, not this file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class DatawalletModification:
    id: str
    index: int
    object_identifier: str
    payload_category: str | None = None
    collection: str
    type: str
    encrypted_payload: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DatawalletModificationIn:
    id: str
    object_identifier: str
    payload_category: str | None = None
    collection: str
    type: str
    encrypted_payload: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionPeer:
    address: str
    relationship_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecipient:
    address: str
    encrypted_key: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult:
    index: int
    error_code: str | None = None
