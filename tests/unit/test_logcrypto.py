"""At-rest encryption of the event log."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest

from backbone.security.logcrypto import (
    DecryptionError,
    MasterKey,
    new_data_key,
    open_sealed,
    seal,
)
from store.envelopes import EnvelopeCodec


def test_seal_round_trip_and_every_tamper_fails() -> None:
    key = new_data_key()
    sealed = seal(key, b"hello", b"aad")
    assert open_sealed(key, sealed, b"aad") == b"hello"
    assert b"hello" not in sealed
    with pytest.raises(DecryptionError):
        open_sealed(key, sealed, b"other aad")
    with pytest.raises(DecryptionError):
        open_sealed(new_data_key(), sealed, b"aad")
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(key, bytes(flipped), b"aad")


def test_wrapped_key_is_bound_to_its_id_and_repr_hides_the_key() -> None:
    master = MasterKey.generate()
    data_key = new_data_key()
    wrapped = master.wrap(data_key, "id-1")
    assert master.unwrap(wrapped, "id-1") == data_key
    with pytest.raises(DecryptionError):
        master.unwrap(wrapped, "id-2")
    assert "redacted" in repr(master)
    assert base64.b64encode(master._key).decode() not in repr(master)


def test_envelope_hides_the_body_and_a_shredded_key_makes_it_unreadable() -> None:
    keys = {"dk": new_data_key()}
    codec = EnvelopeCodec(base64.b64encode(os.urandom(32)).decode(), lambda k: keys[k])
    address = "did:e:localhost:dids:0123456789abcdef0123"
    body = {
        "address": address,
        "device_id": "DVC1",
        "username": "USR1",
        "deleted_at": datetime.now(UTC),
        "deleted_by_device": "DVC2",
    }
    agg = codec.aggregate_key("identity", address)
    raw = codec.seal("DeviceDeleted", body, aggregate_key=agg, correlation_id="c", data_key_id="dk")
    assert address.encode() not in raw and b"USR1" not in raw
    assert codec.open(raw).body["username"] == "USR1"
    del keys["dk"]  # crypto-shredding
    with pytest.raises(KeyError):
        codec.open(raw)
