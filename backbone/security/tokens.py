"""Short-lived bearer tokens for devices, checked without any database.

Enmeshed hands out OpenIddict JWTs (claims `nmshd_address`, `device_id`; 300 s by default).
Ours are simpler and carry the same facts: `<payload>.<tag>`, both base64url, where the
payload is the JSON `{"v":1,"a":address,"d":device_id,"e":expiry,"n":nonce}` and the tag is
HMAC-SHA256 over it under a key derived from the configured secret. Nothing secret is in the
token (address and device id are not secrets), a 128-bit nonce makes every token distinct,
and without the key a valid tag cannot be made: guessing one is a 2^-256 chance.

The tag is checked, in constant time, before the payload is parsed, so no attacker-made JSON
is ever read. Revocation before expiry (a deleted device) is the caller's job: check the
device still exists; the short lifetime bounds the window otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backbone.security.challenges import utc

MIN_SECRET_BYTES: int = 32
MAX_TOKEN_LENGTH: int = 2048
_VERSION = 1
_TAG_LABEL = b"backbone/bearer-token/v1."


class InvalidToken(Exception):
    """Malformed, forged or expired; `reason` says which, for logs, never for the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid bearer token: {reason}")


@dataclass(frozen=True)
class TokenClaims:
    address: str
    device_id: str
    expires_at: datetime


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    # Canonical form only: re-encoding must give back the same text, so a token has exactly
    # one spelling (no padding variants, no stray bits in the last character).
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("malformed") from exc
    if _b64url(raw) != text:
        raise InvalidToken("malformed")
    return raw


class TokenIssuer:
    def __init__(self, secret: bytes, ttl_seconds: int = 900) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = ttl_seconds
        # A purpose-bound subkey, so the configured secret may also key other things safely.
        self._key = hmac.new(secret, b"backbone/bearer-token-key/v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"TokenIssuer(ttl_seconds={self.ttl_seconds}, secret=<redacted>)"

    __str__ = __repr__

    def _tag(self, payload_part: str) -> bytes:
        return hmac.new(self._key, _TAG_LABEL + payload_part.encode("ascii"), "sha256").digest()

    def issue(self, address: str, device_id: str, now: datetime | None = None) -> tuple[str, int]:
        """A token for this device and its lifetime in seconds (OAuth's `expires_in`)."""
        expires_at = utc(now).replace(microsecond=0) + timedelta(seconds=self.ttl_seconds)
        payload = {
            "v": _VERSION,
            "a": address,
            "d": device_id,
            "e": int(expires_at.timestamp()),
            "n": _b64url(secrets.token_bytes(16)),
        }
        payload_part = _b64url(json.dumps(payload, separators=(",", ":")).encode())
        return f"{payload_part}.{_b64url(self._tag(payload_part))}", self.ttl_seconds

    def verify(self, token: str, now: datetime | None = None) -> TokenClaims:
        """The claims of a token this issuer made and that has not expired; else InvalidToken."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise InvalidToken("malformed")
        payload_part, tag_part = token.split(".")
        if not payload_part.isascii():
            raise InvalidToken("malformed")
        if not hmac.compare_digest(_unb64url(tag_part), self._tag(payload_part)):
            raise InvalidToken("bad tag")
        try:
            payload: Any = json.loads(_unb64url(payload_part))
            address, device_id, expiry = payload["a"], payload["d"], payload["e"]
        except (ValueError, KeyError, TypeError) as exc:
            # Only reachable with our own key, i.e. a bug or a format change: still refuse.
            raise InvalidToken("malformed") from exc
        if (
            payload.get("v") != _VERSION
            or not isinstance(address, str)
            or not isinstance(device_id, str)
            or not isinstance(expiry, int)
        ):
            raise InvalidToken("malformed")
        expires_at = datetime.fromtimestamp(expiry, UTC)
        if utc(now) >= expires_at:
            raise InvalidToken("expired")
        return TokenClaims(address, device_id, expires_at)
