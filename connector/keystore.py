"""Keys at rest: everything secret the Connector stores is sealed with one storage key.

The storage key comes from configuration: `CONNECTOR_STORAGE_KEY` (base64 of 32 bytes),
`CONNECTOR_STORAGE_KEY_FILE` (a file holding that, as `connector new-key` writes it), or
`CONNECTOR_PASSPHRASE`, stretched with Argon2id (libsodium's MODERATE limits) and a salt
kept beside the database. Without the key, the database file reveals no private key, no
device password and no relationship secret.

Files that hold keys are created with mode 0600 (the data directory 0700) and never
overwritten: a second `new-key` or a second salt would make the sealed keys unreadable.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
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
        given = [
            n
            for n in ("CONNECTOR_STORAGE_KEY", "CONNECTOR_STORAGE_KEY_FILE", "CONNECTOR_PASSPHRASE")
            if os.environ.get(n, "").strip()
        ]
        if len(given) > 1:
            raise KeystoreError(f"set only one of {' and '.join(given)}")
        raw = os.environ.get("CONNECTOR_STORAGE_KEY", "").strip()
        if raw:
            return cls.from_base64(raw, "CONNECTOR_STORAGE_KEY")
        key_file = os.environ.get("CONNECTOR_STORAGE_KEY_FILE", "").strip()
        if key_file:
            try:
                text = Path(key_file).read_text()
            except OSError as exc:
                raise KeystoreError(
                    f"CONNECTOR_STORAGE_KEY_FILE {key_file}: cannot read it "
                    f"({exc.strerror}); `connector new-key {key_file}` makes one"
                ) from None
            return cls.from_base64(text.strip(), f"CONNECTOR_STORAGE_KEY_FILE {key_file}")
        passphrase = os.environ.get("CONNECTOR_PASSPHRASE", "")
        if passphrase:
            return cls.from_passphrase(passphrase, data_dir)
        raise KeystoreError(
            "no storage key: set CONNECTOR_STORAGE_KEY_FILE (a file made by `connector new-key "
            "FILE`), CONNECTOR_STORAGE_KEY (base64 of 32 random bytes) or CONNECTOR_PASSPHRASE"
        )

    @classmethod
    def from_base64(cls, raw: str, where: str) -> Keystore:
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise KeystoreError(f"{where} is not base64 of {KEY_BYTES} bytes")
        return cls(key)

    @classmethod
    def from_passphrase(cls, passphrase: str, data_dir: Path) -> Keystore:
        salt_path = data_dir / SALT_FILE
        prepare_data_dir(data_dir)
        write_new_file(salt_path, random(pwhash.argon2id.SALTBYTES))  # kept if it exists
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


def prepare_data_dir(data_dir: Path) -> None:
    """The data directory, readable by its owner only (it holds the sealed keys)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_new_file(path: Path, content: bytes) -> bool:
    """Write `content` to a new file of mode 0600; an existing file is left as it is.
    Returns whether the file was written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return True


def new_key_file(path: Path) -> bool:
    """A fresh storage key in `path` (base64, mode 0600), unless the file exists: it may
    be the only key to an identity. Returns whether a key was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_new_file(path, base64.b64encode(random(KEY_BYTES)) + b"\n")


def private_database(database: Path) -> None:
    """Create the SQLite file with mode 0600 before SQLite does (it would use the umask,
    often 0644); SQLite gives its journal files the database's mode. An existing file
    readable by others is tightened."""
    prepare_data_dir(database.parent)
    write_new_file(database, b"")
    mode = stat.S_IMODE(database.stat().st_mode)
    if mode & 0o077:
        database.chmod(mode & 0o700)
