"""What the API and the deciders agree on for `Idempotency-Key` (api/idempotency.py).

A keyed request's correlation id is `idem-<key id>-<body fingerprint>`: a retry carries the
same id (the decider answers it with its first outcome), and the same key with another
body shares the key part but not the whole (the decider refuses it).
"""

from __future__ import annotations

import hashlib

PREFIX = "idem-"
KEY_REUSED = "error.platform.validation.idempotencyKeyReused"
# How long the API refuses a reused key with another body (the `idempotency_keys` rows'
# TTL). The deciders remember a handled command per aggregate for longer than that.
WINDOW_S = 24 * 3600


def key_id(scope: str, method: str, route: str, key: str) -> str:
    """The key as the backbone stores it: per caller and route, and not the client's text."""
    material = "\x1f".join((scope, method, route, key)).encode()
    return hashlib.sha256(material).hexdigest()[:32]


def correlation_id(key_id: str, fingerprint: str) -> str:
    return f"{PREFIX}{key_id}-{fingerprint}"


def split(correlation: str) -> tuple[str, str] | None:
    """(key id, fingerprint) of a keyed request's correlation id; None for any other."""
    if not correlation.startswith(PREFIX):
        return None
    key, sep, fingerprint = correlation[len(PREFIX) :].partition("-")
    return (key, fingerprint) if sep else None


def reuses_key(correlation: str, handled: list[str]) -> bool:
    """True when `correlation` is keyed and a handled command had its key with another body."""
    mine = split(correlation)
    if mine is None:
        return False
    return any((other := split(h)) is not None and other[0] == mine[0] for h in handled)
