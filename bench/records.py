"""The record and row shapes the raw-limit measurements use, sized like the backbone's.

A 1 KiB message to one recipient becomes, on `mailbox-entries`, an Avro `Envelope` with a
sealed `MailboxEntry` body whose `payload_json` carries the 1 KiB ciphertext inline
(base64) plus ids and timestamps; in Cassandra it becomes one `mailbox` row with that JSON
as `payload`. The raw measurements send and insert records and rows of exactly these
sizes, so "raw" differs from the backbone only by what the backbone does, not by bytes.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

BODY_BYTES = 1024
# The address shape the backbone hands out (did:e:<domain>:dids:<hash>).
ADDRESS_PREFIX = "did:e:localhost:dids:"


def fake_address(i: int) -> str:
    return f"{ADDRESS_PREFIX}bench{i:017x}"


def message_payload(sender: str, body_b64: str | None = None) -> str:
    """The JSON of a `MessageReceived` mailbox entry with a 1 KiB body inline, as
    `domain/mailbox_router.py` builds it."""
    payload = {
        "messageId": "MSG" + uuid.uuid4().hex[:17],
        "createdBy": sender,
        "createdByDevice": "DVC" + uuid.uuid4().hex[:17],
        "createdAt": datetime.now(UTC).isoformat(),
        "attachments": [],
        "body": body_b64 or base64.b64encode(os.urandom(BODY_BYTES)).decode(),
        "encryptedKey": base64.b64encode(os.urandom(48)).decode(),
    }
    return json.dumps(payload)


def sealed_entry_size() -> int:
    """Bytes of one sealed `MailboxEntry` record as the backbone writes it, measured by
    sealing one with a throw-away master key and data key (never the stack's keys)."""
    from store.envelopes import EnvelopeCodec

    scratch = EnvelopeCodec(base64.b64encode(os.urandom(32)).decode(), lambda _: os.urandom(32))
    address = fake_address(0)
    entry = {
        "recipient": address,
        "event_type": "MessageReceived",
        "payload_json": message_payload(fake_address(1)),
        "source_event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC),
    }
    key = scratch.aggregate_key("identity", address)
    sealed = scratch.seal(
        "MailboxEntry",
        entry,
        aggregate_key=key,
        correlation_id="bench",
        data_key_id=scratch.identity_key_id(address),
    )
    return len(sealed)


def raw_record(address: str, payload_json: str, size: int) -> bytes:
    """A raw-pipeline record: plain JSON with what the consumer needs to insert a row,
    padded to `size` bytes so it weighs what a sealed entry weighs on Kafka."""
    record: dict[str, Any] = {
        "a": address,
        "t": "MessageReceived",
        "p": payload_json,
        "s": str(uuid.uuid4()),
        "pad": "",
    }
    raw = json.dumps(record).encode()
    if len(raw) < size:
        record["pad"] = "x" * (size - len(raw))
        raw = json.dumps(record).encode()
    return raw


def row_payload_size() -> int:
    return len(message_payload(fake_address(1)))
