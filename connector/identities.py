"""Creating the organization's identity on the backbone, and loading it back."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from connector.backbone_client import BackboneClient
from connector.config import ConnectorSettings
from connector.crypto import IdentityKeys
from connector.keystore import Keystore
from connector.store import SqliteStore, StoredIdentity


@dataclass(frozen=True)
class LocalIdentity:
    address: str
    keys: IdentityKeys
    device_id: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"LocalIdentity(address={self.address!r}, device_id={self.device_id!r}, <secrets>)"


async def create_identity(
    settings: ConnectorSettings, store: SqliteStore, keystore: Keystore
) -> LocalIdentity:
    """A new identity on the backbone (challenge signed with a fresh key), stored sealed."""
    keys = IdentityKeys.generate()
    password = secrets.token_urlsafe(32)  # the device's: only this Connector knows it
    async with httpx.AsyncClient(base_url=settings.backbone_url, timeout=30) as http:
        client = BackboneClient(http, settings.client_id, settings.client_secret)
        created = await client.create_identity(password, keys.signing)
    store.add_identity(
        StoredIdentity(
            address=created.address,
            sealed_keys=keystore.seal(keys.to_bytes(), f"keys:{created.address}"),
            device_id=created.device.id,
            username=created.device.username,
            sealed_password=keystore.seal(password.encode(), f"password:{created.address}"),
            created_at=datetime.now(UTC).isoformat(),
        )
    )
    return LocalIdentity(
        created.address, keys, created.device.id, created.device.username, password
    )


def load_identities(store: SqliteStore, keystore: Keystore) -> list[LocalIdentity]:
    return [
        LocalIdentity(
            row.address,
            IdentityKeys.from_bytes(keystore.open(row.sealed_keys, f"keys:{row.address}")),
            row.device_id,
            row.username,
            keystore.open(row.sealed_password, f"password:{row.address}").decode(),
        )
        for row in store.identities()
    ]
