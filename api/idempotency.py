"""`Idempotency-Key` on writes (the IETF httpapi draft's semantics): a client that retries a
request after a 503 or a cut connection gets the first outcome, never a second write.

How it holds without the API writing anything itself:
- The key, scoped to the caller and the route, and the request body's fingerprint become
  the command's correlation id, and the ids of what the request creates are derived from
  them. A retry therefore sends the *same* command, and the decider that owns the
  aggregate answers a correlation id it has handled with its first outcome (it remembers
  the recent ones per aggregate; a created resource's aggregate is its own).
- The projector records each key's fingerprint in `idempotency_keys` when it forwards the
  command's reply (a read model like any other). The same key with another body is then
  refused with 422 before anything is sent; the decider refuses it too when both arrive
  before that record exists (same aggregate).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from backbone.idempotency import KEY_REUSED, correlation_id, key_id
from backbone.security.ids import ALPHABET, RANDOM_LENGTH, new_id
from store.readmodels.idempotency import IdempotencyReads

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
INVALID_KEY = "error.platform.validation.invalidIdempotencyKey"
_VERSION = re.compile(r"^/api/v\d+")


@dataclass(frozen=True)
class IdempotencyKey:
    """The header's value and what it is sent with, not yet bound to a caller."""

    value: str
    method: str
    route: str
    fingerprint: str

    def scoped(self, scope: str) -> Idempotent:
        return Idempotent(key_id(scope, self.method, self.route, self.value), self.fingerprint)


@dataclass(frozen=True)
class Idempotent:
    """A key bound to the caller: the command's correlation id and the derived ids."""

    key_id: str
    fingerprint: str

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.key_id, self.fingerprint)

    def resource_id(self, prefix: str, role: str = "") -> str:
        """The id this request creates: the same for a retry, another for another body."""
        digest = hmac.new(
            self.fingerprint.encode(), f"{self.key_id}/{prefix}/{role}".encode(), "sha256"
        ).digest()
        number = int.from_bytes(digest, "big")
        chars = []
        for _ in range(RANDOM_LENGTH):
            number, index = divmod(number, len(ALPHABET))
            chars.append(ALPHABET[index])
        return prefix + "".join(chars)


async def read_idempotency_key(request: Request) -> IdempotencyKey | None:
    value = request.headers.get(HEADER)
    if value is None:
        return None
    # The draft makes the key an opaque string; printable ASCII of bounded length keeps it
    # out of trouble in logs and hashes.
    if not value or len(value) > MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        raise ApiError(
            400, INVALID_KEY, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    # The path itself, not its route template: the same key on two relationships' Accept
    # is two requests. The same endpoint under /api/v1 and /api/v2 is one.
    route = _VERSION.sub("", request.url.path)
    body = await request.body()
    fingerprint = hashlib.sha256(body).hexdigest()[:32]
    return IdempotencyKey(value, request.method, route, fingerprint)


MaybeIdempotent = Annotated[IdempotencyKey | None, Depends(read_idempotency_key)]


def new_resource_id(prefix: str, idem: Idempotent | None, role: str = "") -> str:
    return idem.resource_id(prefix, role) if idem is not None else new_id(prefix)


async def bind_key(
    keys: IdempotencyReads, key: IdempotencyKey | None, scope: str
) -> Idempotent | None:
    """`key` bound to its caller (`scope`); 422 when it already carried another body (as far
    as the read model knows)."""
    if key is None:
        return None
    idem = key.scoped(scope)
    first = await keys.fingerprint(idem.key_id)
    if first is not None and first != idem.fingerprint:
        raise ApiError(422, KEY_REUSED, f"this {HEADER} was used with another request body")
    return idem
