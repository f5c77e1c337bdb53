"""At-rest encryption of event bodies on Kafka: XChaCha20-Poly1305 with per-identity data
keys, the data keys wrapped by the master key from configuration.

Destroying an identity's data key makes its events unreadable in every copy of the log,
while the log itself stays immutable (crypto-shredding).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
)
from nacl.exceptions import CryptoError

KEY_BYTES: int = crypto_aead_xchacha20poly1305_ietf_KEYBYTES
NONCE_BYTES: int = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES


class DecryptionError(Exception):
    """Wrong key, wrong associated data, or tampered ciphertext."""


def derive_key(master: bytes, purpose: bytes) -> bytes:
    """A 32-byte subkey of `master` for one purpose (keyed BLAKE2b)."""
    return hashlib.blake2b(purpose, key=master, digest_size=32).digest()


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    # 24-byte random nonces: collisions are negligible even for billions of records per key.
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionError("sealed data too short")
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[NONCE_BYTES:], aad, sealed[:NONCE_BYTES], key
        )
    except CryptoError as exc:
        raise DecryptionError("cannot open: wrong key, associated data or tampered") from exc


class MasterKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_base64(cls, value: str) -> MasterKey:
        return cls(base64.b64decode(value, validate=True))

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(new_data_key())

    def __repr__(self) -> str:
        return "MasterKey(<redacted>)"

    __str__ = __repr__

    def wrap(self, data_key: bytes, key_id: str) -> bytes:
        # The key id is the associated data: a wrapped key cannot be passed off as another's.
        return seal(self._key, data_key, key_id.encode())

    def unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        return open_sealed(self._key, wrapped, key_id.encode())
