"""End-to-end cryptography of the Connector, all of it: the backbone sees only its output.

Keys of an identity (`IdentityKeys`):
- an Ed25519 signing key: the identity itself (its address is derived from the public half);
- an X25519 exchange key: what peers use to agree on a relationship secret.

Shared objects (templates, tokens, files): the content is sealed with a fresh random key
(XChaCha20-Poly1305); whoever gets the *reference* (object id + that key, e.g. in a QR
code) can open it. The backbone stores the ciphertext and never sees the reference.

Relationships: a template carries the owner's public keys; the request carries the
requester's. Both sides then derive the same 32-byte relationship secret with X25519 and
HKDF-like hashing (`relationship_secret`); it never travels.

Messages: the body is sealed with a fresh content key; the key is wrapped once per
recipient with that recipient's relationship secret; the sender signs the sealed body, so a
recipient knows who wrote it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from nacl.bindings import crypto_scalarmult
from nacl.encoding import RawEncoder
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.hash import blake2b
from nacl.public import PrivateKey
from nacl.secret import Aead
from nacl.signing import SigningKey, VerifyKey
from nacl.utils import random

KEY_BYTES = 32
SEAL_OVERHEAD = 24 + 16  # XChaCha20-Poly1305: the nonce and the tag


class DecryptionFailed(Exception):
    """Ciphertext that was altered, or a key that does not fit."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PublicKeys:
    """What a peer learns of an identity: enough to verify it and to agree on a secret."""

    signing: bytes  # Ed25519
    exchange: bytes  # X25519

    def to_json(self) -> dict[str, str]:
        return {"sig": _b64(self.signing), "ex": _b64(self.exchange)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PublicKeys:
        signing, exchange = _unb64(raw["sig"]), _unb64(raw["ex"])
        if len(signing) != KEY_BYTES or len(exchange) != KEY_BYTES:
            raise ValueError("public keys are 32 bytes each")
        return cls(signing, exchange)


@dataclass(frozen=True)
class IdentityKeys:
    signing: SigningKey
    exchange: PrivateKey

    @classmethod
    def generate(cls) -> IdentityKeys:
        return cls(SigningKey.generate(), PrivateKey.generate())

    def public(self) -> PublicKeys:
        return PublicKeys(bytes(self.signing.verify_key), bytes(self.exchange.public_key))

    def to_bytes(self) -> bytes:
        """The private keys, for the keystore (which encrypts them)."""
        return bytes(self.signing) + bytes(self.exchange)

    @classmethod
    def from_bytes(cls, raw: bytes) -> IdentityKeys:
        if len(raw) != 2 * KEY_BYTES:
            raise ValueError("identity keys are 64 bytes")
        return cls(SigningKey(raw[:KEY_BYTES]), PrivateKey(raw[KEY_BYTES:]))

    def __repr__(self) -> str:
        return "IdentityKeys(<private keys redacted>)"


def new_content_key() -> bytes:
    return random(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, context: bytes = b"") -> bytes:
    """XChaCha20-Poly1305 with a random nonce; `context` is authenticated, not encrypted."""
    return bytes(Aead(key).encrypt(plaintext, context))


def open_sealed(key: bytes, sealed: bytes, context: bytes = b"") -> bytes:
    try:
        return bytes(Aead(key).decrypt(sealed, context))
    except (CryptoError, ValueError) as exc:
        raise DecryptionFailed("ciphertext altered or wrong key") from exc


def relationship_secret(mine: IdentityKeys, peer: PublicKeys, template_id: str) -> bytes:
    """The secret both parties of a relationship derive; bound to both parties' keys (in a
    fixed order) and to the template, so it differs for every relationship."""
    shared = crypto_scalarmult(bytes(mine.exchange), peer.exchange)
    parties = sorted([bytes(mine.exchange.public_key), peer.exchange])
    material = shared + parties[0] + parties[1] + template_id.encode()
    return bytes(
        blake2b(material, digest_size=KEY_BYTES, person=b"relationship-key", encoder=RawEncoder)
    )


SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class SealedMessage:
    body: bytes  # the sender's signature, then the content sealed with the content key
    wrapped_keys: dict[str, bytes]  # recipient address -> content key sealed for them


def _message_digest(sender: str, ciphertext: bytes) -> bytes:
    return bytes(
        blake2b(
            sender.encode() + b"\n" + ciphertext,
            digest_size=64,
            person=b"message-v1",
            encoder=RawEncoder,
        )
    )


def seal_message(
    sender_keys: IdentityKeys, sender: str, plaintext: bytes, secrets: dict[str, bytes]
) -> SealedMessage:
    """`secrets`: recipient address -> the relationship secret with that recipient.

    The signature covers the sender and the sealed content, and travels in the body, so a
    recipient verifies from what it alone receives (its own wrapped key and the body). The
    wrapped keys need no signature: a swapped key either does not unwrap or yields a key
    that does not open the signed, authenticated content."""
    content_key = new_content_key()
    ciphertext = seal(content_key, plaintext, sender.encode())
    signature = sender_keys.signing.sign(_message_digest(sender, ciphertext)).signature
    wrapped = {
        address: seal(secret, content_key, address.encode()) for address, secret in secrets.items()
    }
    return SealedMessage(signature + ciphertext, wrapped)


def open_message(
    body: bytes, wrapped_key: bytes, sender: str, sender_public: PublicKeys, me: str, secret: bytes
) -> bytes:
    """The plaintext, after checking the sender's signature and unwrapping my key."""
    signature, ciphertext = body[:SIGNATURE_BYTES], body[SIGNATURE_BYTES:]
    try:
        VerifyKey(sender_public.signing).verify(_message_digest(sender, ciphertext), signature)
    except (BadSignatureError, ValueError) as exc:
        raise DecryptionFailed("the sender's signature does not verify") from exc
    content_key = open_sealed(secret, wrapped_key, me.encode())
    return open_sealed(content_key, ciphertext, sender.encode())


def encode_reference(object_id: str, key: bytes) -> str:
    """What a QR code carries: the object's id and the key to open it."""
    return f"{object_id}.{_b64(key)}"


def decode_reference(reference: str) -> tuple[str, bytes]:
    object_id, _, key = reference.partition(".")
    raw = _unb64(key) if key else b""
    if len(object_id) != 20 or len(raw) != KEY_BYTES:
        raise ValueError("not a reference: expected <20-character id>.<key>")
    return object_id, raw
