"""Byte fields on the wire (content, bodies, keys, hashes): base64url without padding, the
Enmeshed form and what `/api/v2` writes; standard base64 (what `/api/v1` and the mailbox
stream write) is read as well, padded or not.

Part of the contract, so that a client reads what either API version wrote without
importing the server.
"""

from __future__ import annotations

import base64
import binascii


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """The bytes of a field in either alphabet; ValueError when it is not base64 at all, or
    mixes the two alphabets."""
    url_safe = "-" in text or "_" in text
    if url_safe and ("+" in text or "/" in text):
        raise ValueError("base64 that mixes the standard and the URL-safe alphabet")
    try:
        return base64.b64decode(
            text + "=" * (-len(text) % 4), altchars=b"-_" if url_safe else None, validate=True
        )
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc
