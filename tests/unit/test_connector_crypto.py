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
        opened = crypto.open_message(
            sealed.body, sealed.wrapped_keys[me], ALICE, alice.public(), me, secret
        )
        assert opened == b"hello both"
    # Carol's secret does not open Bob's key, nor does Bob's key open as someone else's.
    with pytest.raises(DecryptionFailed):
        crypto.open_message(
            sealed.body, sealed.wrapped_keys[BOB], ALICE, alice.public(), BOB, secrets[CAROL]
        )
    with pytest.raises(DecryptionFailed):
        crypto.open_message(
            sealed.body,
            sealed.wrapped_keys[BOB],
            ALICE,
            alice.public(),
            "did:e:x:dids:eve",
            secrets[BOB],
        )


def test_a_forged_or_altered_message_is_refused() -> None:
    alice, bob, mallory = IdentityKeys.generate(), IdentityKeys.generate(), IdentityKeys.generate()
    secret = crypto.relationship_secret(alice, bob.public(), "RLT1")
    sealed = crypto.seal_message(alice, ALICE, b"pay 10", {BOB: secret})
    key = sealed.wrapped_keys[BOB]
    flipped = bytearray(sealed.body)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        crypto.open_message(bytes(flipped), key, ALICE, alice.public(), BOB, secret)
    # Someone holding the secret cannot pass a message off as Alice's.
    forged = crypto.seal_message(mallory, ALICE, b"pay 1000", {BOB: secret})
    with pytest.raises(DecryptionFailed):
        crypto.open_message(
            forged.body, forged.wrapped_keys[BOB], ALICE, alice.public(), BOB, secret
        )
    # A wrapped key swapped for one of another message does not open this one.
    other = crypto.seal_message(alice, ALICE, b"pay 5", {BOB: secret})
    with pytest.raises(DecryptionFailed):
        crypto.open_message(
            sealed.body, other.wrapped_keys[BOB], ALICE, alice.public(), BOB, secret
        )
    assert b"pay 5" not in other.body and b"pay 10" not in sealed.body


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
