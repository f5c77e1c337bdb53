"""A faust codec that encrypts table values, so changelog topics hold no plaintext either.

The decider's state (an identity's address, its devices and usernames) is written to a
changelog topic on every change. Those records live on Kafka like events do, so they are
sealed (XChaCha20-Poly1305) under a key derived from the master key. A faust codec sees
values only, so the associated data is a fixed purpose label, which keeps these values
from being mistaken for (or swapped with) anything else sealed under the master key.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from faust.serializers import codecs

from backbone.security.logcrypto import derive_key, open_sealed, seal

NAME = "backbone-sealed-json"
_AAD = b"backbone/table-value/v1"


class SealedJson(codecs.Codec):
    def __init__(self, key: bytes) -> None:
        super().__init__()
        self._key = key

    def __repr__(self) -> str:
        return "SealedJson(<key redacted>)"

    def _dumps(self, obj: Any) -> bytes:
        return seal(self._key, json.dumps(obj, separators=(",", ":")).encode(), _AAD)

    def _loads(self, data: bytes) -> Any:
        return json.loads(open_sealed(self._key, data, _AAD))


def register(master_key_b64: str) -> str:
    """Register the codec for this process's master key; returns the serializer name."""
    key = derive_key(base64.b64decode(master_key_b64), b"backbone/table-key")
    codecs.register(NAME, SealedJson(key))
    return NAME
