"""Records on Kafka: an Avro Envelope around an encrypted, Avro-encoded body.

Only routing metadata travels in the clear: an opaque aggregate key (a keyed hash, never
an address), the record type, versions and ids. Event bodies are sealed with the data key
of the identity they belong to (crypto-shredding destroys that key); commands and replies,
which live on short-retention topics, are sealed with a system key derived from the
master key.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backbone.security.logcrypto import derive_key, open_sealed, seal
from schemas import codec

SYSTEM_KEY_ID = "system"


@dataclass(frozen=True)
class Opened:
    name: str  # short record name of the body, e.g. "IdentityCreated"
    body: dict[str, Any]
    envelope: dict[str, Any]


class EnvelopeCodec:
    def __init__(self, master_key_b64: str, data_key: Callable[[str], bytes]) -> None:
        """`data_key(key_id)` returns the plain data key of an identity, or raises KeyError."""
        master = base64.b64decode(master_key_b64)
        self._system_key = derive_key(master, b"backbone/system-log-key")
        self._routing_key = derive_key(master, b"backbone/routing-key")
        self._data_key = data_key

    def __repr__(self) -> str:
        return "EnvelopeCodec(<keys redacted>)"

    def aggregate_key(self, aggregate_type: str, aggregate_id: str) -> str:
        """The Kafka record key: stable per aggregate, meaningless without the master key."""
        mac = hmac.new(self._routing_key, f"{aggregate_type}:{aggregate_id}".encode(), "sha256")
        return mac.hexdigest()[:32]

    def identity_key_id(self, address: str) -> str:
        """The id of an identity's data key: derived from the address, so every decider can
        find the key of the identity whose events it seals without asking another one."""
        return "dk-" + self.aggregate_key("identity-data-key", address)

    def has_key(self, key_id: str) -> bool:
        try:
            self._key(key_id)
        except KeyError:
            return False
        return True

    def _key(self, key_id: str) -> bytes:
        return self._system_key if key_id == SYSTEM_KEY_ID else self._data_key(key_id)

    def seal(
        self,
        name: str,
        body: dict[str, Any],
        *,
        aggregate_key: str,
        correlation_id: str,
        data_key_id: str = SYSTEM_KEY_ID,
        aggregate_version: int = 0,
        causation_id: str | None = None,
        event_id: str | None = None,
    ) -> bytes:
        """`event_id`: given when the same record may be made again (see `derived_event_id`);
        random otherwise."""
        event_id = event_id or str(uuid.uuid4())
        plain = codec.encode(name, body)
        # The envelope's identity is bound into the AEAD: a body cannot be moved to another
        # envelope (other aggregate, type or event id) without failing to open.
        aad = f"{event_id}|{name}|{aggregate_key}".encode()
        envelope = {
            "event_id": event_id,
            "type": name,
            "aggregate_key": aggregate_key,
            "aggregate_version": aggregate_version,
            "occurred_at": datetime.now(UTC),
            "causation_id": causation_id,
            "correlation_id": correlation_id,
            "data_key_id": data_key_id,
            "body": seal(self._key(data_key_id), plain, aad),
        }
        return codec.encode("Envelope", envelope)

    def reply(
        self,
        correlation_id: str,
        status: int,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bytes:
        """The answer to a request, for the API process waiting on its correlation id."""
        return self.seal(
            "Reply",
            {
                "correlation_id": correlation_id,
                "ok": error_code is None,
                "status": status,
                "error_code": error_code,
                "error_message": error_message,
                "resource_json": None,
            },
            aggregate_key=correlation_id,
            correlation_id=correlation_id,
        )

    def open(self, raw: bytes) -> Opened:
        _, envelope = codec.decode(raw)
        name = envelope["type"]
        aad = f"{envelope['event_id']}|{name}|{envelope['aggregate_key']}".encode()
        plain = open_sealed(self._key(envelope["data_key_id"]), envelope["body"], aad)
        _, body = codec.decode(plain)
        return Opened(name, body, envelope)


_EVENT_IDS = uuid.UUID("6f1c2a52-52d4-4c8e-9a55-1f0e8b7f3c10")


def derived_event_id(command_event_id: str, n: int) -> str:
    """The id of the n-th event a command produced: the same each time the command is
    decided. A worker that dies after appending events but before its state write reached
    the changelog decides the command again on the new owner; with the same ids, the
    projection and the mailbox sequencer recognise the events as ones they have seen."""
    return str(uuid.uuid5(_EVENT_IDS, f"{command_event_id}/{n}"))
