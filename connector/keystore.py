"""Keys at rest: everything secret the Connector stores is sealed with one storage key.

The storage key comes from configuration: `CONNECTOR_STORAGE_KEY` (base64 of 32 bytes), or
`CONNECTOR_PASSPHRASE`, stretched with Argon2id (libsodium's MODERATE limits) and a salt
kept beside the database. Without the key, the database file reveals no private key, no
device password and no relationship secret.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from nacl import pwhash
from nacl.utils import random

from connector.crypto import KEY_BYTES, DecryptionFailed, open_sealed, seal

SALT_FILE = "storage.salt"


class KeystoreError(Exception):
    """The storage key is missing or wrong: say which setting to fix."""


class Keystore:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeystoreError("the storage key must be 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Keystore(<key redacted>)"

    @classmethod
    def from_env(cls, data_dir: Path) -> Keystore:
        raw = os.environ.get("CONNECTOR_STORAGE_KEY", "").strip()
        if raw:
            try:
                return cls(base64.b64decode(raw, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise KeystoreError("CONNECTOR_STORAGE_KEY is not base64 of 32 bytes") from exc
        passphrase = os.environ.get("CONNECTOR_PASSPHRASE", "")
        if passphrase:
            return cls.from_passphrase(passphrase, data_dir)
        raise KeystoreError(
            "set CONNECTOR_STORAGE_KEY (base64 of 32 random bytes) or CONNECTOR_PASSPHRASE"
        )

    @classmethod
    def from_passphrase(cls, passphrase: str, data_dir: Path) -> Keystore:
        salt_path = data_dir / SALT_FILE
        if not salt_path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            salt_path.write_bytes(random(pwhash.argon2id.SALTBYTES))
        key = pwhash.argon2id.kdf(
            KEY_BYTES,
            passphrase.encode(),
            salt_path.read_bytes(),
            opslimit=pwhash.argon2id.OPSLIMIT_MODERATE,
            memlimit=pwhash.argon2id.MEMLIMIT_MODERATE,
        )
        return cls(key)

    def seal(self, plaintext: bytes, what: str) -> bytes:
        return seal(self._key, plaintext, what.encode())

    def open(self, sealed: bytes, what: str) -> bytes:
        try:
            return open_sealed(self._key, sealed, what.encode())
        except DecryptionFailed as exc:
            raise KeystoreError(
                "cannot open the stored keys: wrong CONNECTOR_STORAGE_KEY or passphrase"
            ) from exc
