"""The Connector's end-to-end crypto: what opens, and what must not."""

from __future__ import annotations

import pytest

from connector import crypto
from connector.crypto import DecryptionFailed, IdentityKeys

ALICE, BOB, CAROL = "did:e:x:dids:alice", "did:e:x:dids:bob", "did:e:x:dids:carol"


def test_both_parties_derive_the_same_relationship_secret_and_others_do_not() -> None:
    alice, bob, carol = IdentityKeys.generate(), IdentityKeys.generate(), IdentityKeys.generate()
    ab = crypto.relationship_secret(alice, bob.public(), "RLT1")
    assert ab == crypto.relationship_secret(bob, alice.public(), "RLT1")
    assert ab != crypto.relationship_secret(alice, bob.public(), "RLT2")  # per relationship
    assert ab != crypto.relationship_secret(carol, alice.public(), "RLT1")


def test_a_message_to_two_recipients_opens_for_each_and_only_for_them() -> None:
    alice, bob, carol = IdentityKeys.generate(), IdentityKeys.generate(), IdentityKeys.generate()
    secrets = {
        BOB: crypto.relationship_secret(alice, bob.public(), "RLT1"),
        CAROL: crypto.relationship_secret(alice, carol.public(), "RLT2"),
    }
    sealed = crypto.seal_message(alice, ALICE, b"hello both", secrets)
    assert b"hello both" not in sealed.body
    for me, keys, template in ((BOB, bob, "RLT1"), (CAROL, carol, "RLT2")):
        secret = crypto.relationship_secret(keys, alice.public(), template)
        assert crypto.open_message(sealed, ALICE, alice.public(), me, secret) == b"hello both"
    # Carol's secret does not open Bob's key; a stranger has no key at all.
    with pytest.raises(DecryptionFailed):
        crypto.open_message(sealed, ALICE, alice.public(), BOB, secrets[CAROL])
    with pytest.raises(DecryptionFailed):
        crypto.open_message(sealed, ALICE, alice.public(), "did:e:x:dids:eve", secrets[BOB])


def test_a_forged_or_altered_message_is_refused() -> None:
    alice, bob, mallory = IdentityKeys.generate(), IdentityKeys.generate(), IdentityKeys.generate()
    secret = crypto.relationship_secret(alice, bob.public(), "RLT1")
    sealed = crypto.seal_message(alice, ALICE, b"pay 10", {BOB: secret})
    flipped = bytearray(sealed.body)
    flipped[-1] ^= 1
    altered = crypto.SealedMessage(bytes(flipped), sealed.wrapped_keys, sealed.signature)
    with pytest.raises(DecryptionFailed):
        crypto.open_message(altered, ALICE, alice.public(), BOB, secret)
    # Someone holding the secret cannot pass a message off as Alice's.
    forged = crypto.seal_message(mallory, ALICE, b"pay 1000", {BOB: secret})
    with pytest.raises(DecryptionFailed):
        crypto.open_message(forged, ALICE, alice.public(), BOB, secret)


def test_content_and_references() -> None:
    key = crypto.new_content_key()
    sealed = crypto.seal(key, b"template content", b"RLT1")
    assert crypto.open_sealed(key, sealed, b"RLT1") == b"template content"
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(key, sealed, b"RLT2")  # bound to its object
    reference = crypto.encode_reference("RLTaaaaaaaaaaaaaaaaa", key)
    assert crypto.decode_reference(reference) == ("RLTaaaaaaaaaaaaaaaaa", key)
    with pytest.raises(ValueError):
        crypto.decode_reference("RLTaaaaaaaaaaaaaaaaa")


def test_keys_round_trip_and_never_print() -> None:
    keys = IdentityKeys.generate()
    again = IdentityKeys.from_bytes(keys.to_bytes())
    assert again.public() == keys.public()
    assert crypto.PublicKeys.from_json(keys.public().to_json()) == keys.public()
    assert keys.to_bytes().hex() not in repr(keys)
