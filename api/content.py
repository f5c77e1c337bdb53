"""Encrypted payloads on the wire: base64 in JSON (base64url without padding or standard,
both accepted), opaque to the backbone, size-limited."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from api.errors import ApiError
from api.versioning import encode_bytes

INVALID = "error.platform.validation.invalidPropertyValue"
# Content is ciphertext made by the client; the backbone only bounds its size. The request
# body limit (api/app.py) leaves room for this much after base64.
MAX_CONTENT_BYTES = 32 * 1024
MAX_PASSWORD_BYTES = 200
MAX_LIFETIME = timedelta(days=5 * 365)
# What `decode_content` takes, as JSON Schema can say it (for the OpenAPI document and the
# first check): standard base64 or base64url, one alphabet, padding optional. A length that
# is 1 modulo 4 is still refused by the decoder, which JSON Schema cannot say simply.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]+|[A-Za-z0-9_-]+)={0,2}$"


def decode_content(value: str, field: str, limit: int = MAX_CONTENT_BYTES) -> bytes:
    url_safe = "-" in value or "_" in value
    if url_safe and ("+" in value or "/" in value):
        # One alphabet or the other: a mix decoded to bytes nobody wrote (issue 19).
        raise ApiError(400, INVALID, f"{field}: mixes base64 and base64url characters")
    alt = b"-_" if url_safe else None  # URL-safe base64 too
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=alt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, INVALID, f"{field}: not base64") from exc
    if not raw:
        raise ApiError(400, INVALID, f"{field}: must not be empty")
    if len(raw) > limit:
        raise ApiError(400, INVALID, f"{field}: at most {limit} bytes")
    return raw


def encode_content(raw: bytes | None) -> str | None:
    # base64url without padding on /api/v2, standard base64 on /api/v1 (api/versioning.py).
    return encode_bytes(raw) if raw is not None else None


def check_expiry(expires_at: datetime | None, field: str = "expiresAt") -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ApiError(400, INVALID, f"{field}: needs a time zone (e.g. Z)")
    now = datetime.now(UTC)
    if expires_at <= now:
        raise ApiError(400, INVALID, f"{field}: must be in the future")
    if expires_at > now + MAX_LIFETIME:
        raise ApiError(400, INVALID, f"{field}: at most {MAX_LIFETIME.days} days ahead")
    return expires_at.astimezone(UTC)


def expired(expires_at: datetime | None) -> bool:
    if expires_at is None:
        return False
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return expires_at <= datetime.now(UTC)
