"""What every handler works with: the identity, its device session, its sealed keys and
its records; and the look-ups that answer 404 when a record is unknown."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector import crypto
from connector.backbone_client import DeviceSession
from connector.crypto import DecryptionFailed
from connector.errors import ConnectorError, NotFound
from connector.identities import LocalIdentity
from connector.keystore import Keystore
from connector.repositories import FileRecord, LocalData, RelationshipRecord, TemplateRecord
from schemas import byte_fields


class LocalKeys:
    """Content keys and relationship secrets, sealed by the keystore for one purpose each:
    a key sealed for one template opens for no other record."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore

    def seal_template_key(self, key: bytes, template_id: str) -> bytes:
        return self._keystore.seal(key, f"template:{template_id}")

    def template_key(self, template: TemplateRecord) -> bytes:
        return self._keystore.open(template.sealed_key, f"template:{template.id}")

    def seal_file_key(self, key: bytes, file_id: str) -> bytes:
        return self._keystore.seal(key, f"file:{file_id}")

    def file_key(self, file: FileRecord) -> bytes:
        return self._keystore.open(file.sealed_key, f"file:{file.id}")

    def seal_secret(self, secret: bytes, relationship_id: str) -> bytes:
        return self._keystore.seal(secret, f"secret:{relationship_id}")

    def secret(self, relationship: RelationshipRecord) -> bytes:
        return self._keystore.open(relationship.sealed_secret, f"secret:{relationship.id}")


@dataclass(frozen=True)
class Context:
    identity: LocalIdentity
    session: DeviceSession
    keys: LocalKeys
    data: LocalData

    @property
    def address(self) -> str:
        return self.identity.address

    def template(self, template_id: str) -> TemplateRecord:
        found = self.data.templates.get(template_id)
        if found is None:
            raise NotFound(
                "error.connector.templateNotFound",
                "unknown template: load it by its reference first",
            )
        return found

    def relationship(self, relationship_id: str) -> RelationshipRecord:
        found = self.data.relationships.get(relationship_id)
        if found is None:
            raise NotFound("error.connector.relationshipNotFound", "relationship not found")
        return found

    def relationship_with(self, peer: str, *, active: bool = True) -> RelationshipRecord:
        found = self.data.relationships.latest_with(peer, active=active)
        if found is None:
            raise ConnectorError(
                "error.connector.noActiveRelationship", f"no active relationship with {peer}"
            )
        return found

    def file(self, file_id: str) -> FileRecord:
        found = self.data.files.get(file_id)
        if found is None:
            raise NotFound("error.connector.fileNotFound", f"unknown file {file_id}")
        return found


def to_json(value: Any) -> bytes:
    """Canonical JSON: what gets sealed."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def from_json(raw: bytes | str) -> Any:
    return json.loads(raw)


def now() -> str:
    return datetime.now(UTC).isoformat()


def open_json(key: bytes, content_b64: str, context: bytes, what: str) -> Any:
    """Sealed JSON from the backbone, opened; a 400 naming `what` if it does not open."""
    try:
        return from_json(crypto.open_sealed(key, byte_fields.decode(content_b64), context))
    except (DecryptionFailed, ValueError) as exc:
        raise ConnectorError(
            "error.connector.cannotDecrypt", f"the {what} does not open with this key"
        ) from exc
