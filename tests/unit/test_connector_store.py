"""The Connector's keystore and SQLite store."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from connector.keystore import Keystore, KeystoreError
from connector.store import SqliteStore, StoredIdentity


def test_sealed_secrets_open_only_with_the_same_key_and_purpose(tmp_path: Path) -> None:
    keystore = Keystore(os.urandom(32))
    sealed = keystore.seal(b"private key bytes", "keys:did:e:x:dids:a")
    assert keystore.open(sealed, "keys:did:e:x:dids:a") == b"private key bytes"
    with pytest.raises(KeystoreError):
        keystore.open(sealed, "keys:did:e:x:dids:b")  # not a key of another identity
    with pytest.raises(KeystoreError):
        Keystore(os.urandom(32)).open(sealed, "keys:did:e:x:dids:a")


def test_a_passphrase_gives_the_same_key_again_with_its_salt(tmp_path: Path) -> None:
    first = Keystore.from_passphrase("correct horse", tmp_path)
    sealed = first.seal(b"secret", "x")
    assert Keystore.from_passphrase("correct horse", tmp_path).open(sealed, "x") == b"secret"
    with pytest.raises(KeystoreError):
        Keystore.from_passphrase("wrong horse", tmp_path).open(sealed, "x")


def test_the_environment_must_name_a_valid_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONNECTOR_STORAGE_KEY", raising=False)
    monkeypatch.delenv("CONNECTOR_PASSPHRASE", raising=False)
    with pytest.raises(KeystoreError, match="CONNECTOR_STORAGE_KEY"):
        Keystore.from_env(tmp_path)
    monkeypatch.setenv("CONNECTOR_STORAGE_KEY", "not base64!")
    with pytest.raises(KeystoreError):
        Keystore.from_env(tmp_path)
    monkeypatch.setenv("CONNECTOR_STORAGE_KEY", base64.b64encode(os.urandom(32)).decode())
    assert Keystore.from_env(tmp_path) is not None


def test_mailbox_entries_are_handled_once_and_the_cursor_only_moves_forward(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "c.sqlite")
    assert store.cursor("a") == 0
    assert store.mark_handled("a", 1) and store.mark_handled("a", 3)
    assert not store.mark_handled("a", 1)  # redelivered: skip it
    assert store.mark_handled("a", 2)
    assert store.cursor("a") == 3
    store.add_identity(StoredIdentity("a", b"k", "DVC", "USR", b"p", "t"))
    reopened = SqliteStore(tmp_path / "c.sqlite")
    assert [i.address for i in reopened.identities()] == ["a"]
    assert reopened.cursor("a") == 3
