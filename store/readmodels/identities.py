"""Identities and their devices: tables `identities`, `devices`, `devices_by_username`,
written by the identity projection (streams/readmodels.py `Projection`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.readmodels.base import Queries, columns


@dataclass(frozen=True, slots=True)
class Identity:
    address: str
    public_key: bytes
    client_id: str
    identity_version: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    username: str
    created_at: datetime
    # None for an identity's first device, which no device created.
    created_by_device: str | None
    deleted_at: datetime | None

    @property
    def active(self) -> bool:
        return self.deleted_at is None


@dataclass(frozen=True, slots=True)
class Login:
    """A device's credentials, found by its username."""

    address: str
    device_id: str
    password_hash: str


_IDENTITY = f"SELECT {columns(Identity)} FROM identities WHERE address = ?"  # noqa: S608
_DEVICES = f"SELECT {columns(Device)} FROM devices WHERE address = ?"  # noqa: S608
_LOGIN = f"SELECT {columns(Login)} FROM devices_by_username WHERE username = ?"  # noqa: S608


class IdentityReads(Queries):
    async def identity(self, address: str) -> Identity | None:
        return await self._one(Identity, _IDENTITY, (address,))

    async def devices_of(self, address: str) -> list[Device]:
        """Every device the identity ever had, deleted ones included."""
        return await self._all(Device, _DEVICES, (address,))

    async def device(self, address: str, device_id: str) -> Device | None:
        return await self._one(Device, f"{_DEVICES} AND id = ?", (address, device_id))

    async def login(self, username: str) -> Login | None:
        return await self._one(Login, _LOGIN, (username,))
