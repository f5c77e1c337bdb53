"""Ed25519 verification and the Enmeshed (`@nmshd/crypto`) wire forms of keys and signatures.

Wire forms (nmshd/ts-crypto `src/signature/CryptoSignaturePublicKey.ts`, `CryptoSignature.ts`,
`src/CoreBuffer.ts`): base64url without padding of the UTF-8 JSON

- public key: `{"pub": "<base64url 32 bytes>", "alg": 3, "@type": "CryptoSignaturePublicKey"}`,
  `alg` being `CryptoSignatureAlgorithm` (1 P-256, 2 P-521, 3 Ed25519);
- signature: `{"sig": "<base64url 64 bytes>", "alg": 2, "@type": "CryptoSignature"}`, `alg`
  being the *hash* algorithm (`CryptoHashAlgorithm`: 1 SHA-256, 2 SHA-512, 3 BLAKE2b), which
  Ed25519 does not use; optional `kid`/`id` strings may accompany it.

Parsing accepts base64url or standard base64, padded or not, as the Enmeshed Backbone does
(`Tooling/Base64Helper.cs`), and turns every malformation into a `ValueError` naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

PUBLIC_KEY_BYTES: int = 32
SIGNATURE_BYTES: int = 64

ALG_ED25519: int = 3  # CryptoSignatureAlgorithm.ECDSA_ED25519
HASH_SHA256: int = 1
HASH_SHA512: int = 2  # what @nmshd/crypto writes by default
HASH_BLAKE2B: int = 3
_HASH_ALGORITHMS = frozenset({HASH_SHA256, HASH_SHA512, HASH_BLAKE2B})

PUBLIC_KEY_TYPE: str = "CryptoSignaturePublicKey"
SIGNATURE_TYPE: str = "CryptoSignature"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff `signature` is a valid Ed25519 signature of `message` by `public_key`.

    A key of the wrong length is the caller's bug (keys are parsed before they are stored),
    so it raises; a signature of the wrong length is merely not valid.
    """
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except BadSignatureError:
        return False
    return True


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as `CoreBuffer.toBase64URL()` writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_decode_any(value: object, what: str = "value") -> bytes:
    """Decode base64url or standard base64, with or without padding."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty base64 string")
    body = value.rstrip("=").replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        raise ValueError(f"{what} is not valid base64 (impossible length)")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two "pub" keys would let the reader and a later re-reader disagree on the key.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate field {key!r}")
        result[key] = value
    return result


def _decode_wire_object(wire: str, what: str) -> dict[str, Any]:
    raw = b64_decode_any(wire, what)
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} does not decode to JSON") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must decode to a JSON object")
    return obj


def _int_field(obj: dict[str, Any], name: str, what: str) -> int:
    value = obj.get(name)
    # bool is an int in Python, and `true` is no algorithm.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} needs an integer {name!r}")
    return value


def _check_type(obj: dict[str, Any], expected: str, what: str) -> None:
    if "@type" in obj and obj["@type"] != expected:
        raise ValueError(f"{what} has @type {obj['@type']!r}, expected {expected!r}")


def parse_public_key(wire: str) -> bytes:
    """The raw 32-byte Ed25519 key in a wire public key (e.g. `identityPublicKey`)."""
    what = "the public key"
    obj = _decode_wire_object(wire, what)
    _check_type(obj, PUBLIC_KEY_TYPE, what)
    alg = _int_field(obj, "alg", what)
    if alg != ALG_ED25519:
        raise ValueError(f"{what} has alg {alg}; only Ed25519 ({ALG_ED25519}) is supported")
    key = b64_decode_any(obj.get("pub"), f"{what}'s 'pub'")
    if len(key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"{what} is {len(key)} bytes, an Ed25519 key is {PUBLIC_KEY_BYTES}")
    return key


def serialize_public_key(public_key: bytes, *, verbose: bool = True) -> str:
    """The wire form `CryptoSignaturePublicKey.toBase64(verbose)` produces for this key."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    obj: dict[str, Any] = {"pub": b64url_encode(public_key), "alg": ALG_ED25519}
    if verbose:
        obj["@type"] = PUBLIC_KEY_TYPE
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def parse_signature(wire: str) -> bytes:
    """The raw 64-byte Ed25519 signature in a wire signature (e.g. `signedChallenge.signature`)."""
    what = "the signature"
    obj = _decode_wire_object(wire, what)
    _check_type(obj, SIGNATURE_TYPE, what)
    alg = _int_field(obj, "alg", what)
    if alg not in _HASH_ALGORITHMS:
        raise ValueError(f"{what} has unknown hash alg {alg}")
    sig = b64_decode_any(obj.get("sig"), f"{what}'s 'sig'")
    if len(sig) != SIGNATURE_BYTES:
        raise ValueError(f"{what} is {len(sig)} bytes, an Ed25519 signature is {SIGNATURE_BYTES}")
    return sig


def serialize_signature(signature: bytes, *, alg: int = HASH_SHA512, verbose: bool = True) -> str:
    """The wire form `CryptoSignature.toBase64(verbose)` produces for this signature."""
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes")
    if alg not in _HASH_ALGORITHMS:
        raise ValueError(f"unknown hash alg {alg}")
    obj: dict[str, Any] = {"sig": b64url_encode(signature), "alg": alg}
    if verbose:
        obj["@type"] = SIGNATURE_TYPE
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())
