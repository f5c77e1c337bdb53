"""Read models of messages and mailbox cursors, and their projection.

A message's ciphertext is stored once (`messages`); each recipient has a row with its own
wrapped key and receipt (`message_recipients`); `messages_by_identity` lists a message for
its sender and every recipient. Messages keep the retention the operator configures (TTL),
counted from the event's time: a row written later (a replay, a worker catching up)
expires when the row written at the time would have, and one already past it is not
written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cassandra.cluster import Session

from streams.writes import Write, remaining_ttl

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS messages (
        id text PRIMARY KEY,
        sender text,
        sender_device text,
        body blob,
        attachments list<text>,
        created_at timestamp)""",
    """CREATE TABLE IF NOT EXISTS message_recipients (
        message_id text,
        address text,
        encrypted_key blob,
        received_at timestamp,
        received_by_device text,
        PRIMARY KEY (message_id, address))""",
    """CREATE TABLE IF NOT EXISTS messages_by_identity (
        address text, id text, PRIMARY KEY (address, id))""",
    """CREATE TABLE IF NOT EXISTS mailbox_cursors (
        address text,
        device_id text,
        idx bigint,
        updated_at timestamp,
        PRIMARY KEY (address, device_id))""",
]

# An event's body, its version, its time and the time now: the writes.
Handler = Callable[[dict[str, Any], int, datetime, datetime], list[Write]]


class MessageProjection:
    def __init__(self, session: Session, retention_s: int) -> None:
        self.session = session
        self.retention_s = retention_s
        q = session.prepare
        self._message = q(
            "INSERT INTO messages (id, sender, sender_device, body, attachments, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        )
        self._recipient = q(
            "INSERT INTO message_recipients (message_id, address, encrypted_key)"
            " VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?"
        )
        self._listed = q(
            "INSERT INTO messages_by_identity (address, id) VALUES (?, ?)"
            " USING TTL ? AND TIMESTAMP ?"
        )
        self._received = q(
            "UPDATE message_recipients USING TTL ? AND TIMESTAMP ?"
            " SET received_at = ?, received_by_device = ? WHERE message_id = ? AND address = ?"
        )
        self._cursor = q(
            "INSERT INTO mailbox_cursors (address, device_id, idx, updated_at)"
            " VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._handlers: dict[str, Handler] = {
            "MessageSent": self._sent,
            "MessageReceived": self._message_received,
            "MailboxAcknowledged": self._acknowledged,
            "MessageKeptForRecipient": self._kept,
        }

    def writes(
        self, name: str, b: dict[str, Any], ts: int, at: datetime, now: datetime
    ) -> list[Write] | None:
        """The writes of an event at `at` (its occurred_at), as of `now`; None for an
        event this projection does not handle."""
        handler = self._handlers.get(name)
        return None if handler is None else handler(b, ts, at, now)

    def _sent(self, b: dict[str, Any], ts: int, at: datetime, now: datetime) -> list[Write]:
        ttl = remaining_ttl(self.retention_s, at, now)
        if ttl == 0:
            return []  # expired, as the live rows have
        mid = b["message_id"]
        writes: list[Write] = [self._message_row(b, ttl, ts)]
        for r in b["recipients"]:
            writes.append((self._recipient, (mid, r["address"], r["encrypted_key"], ttl, ts)))
        for address in {b["sender"], *(r["address"] for r in b["recipients"])}:
            writes.append((self._listed, (address, mid, ttl, ts)))
        return writes

    def _kept(self, b: dict[str, Any], ts: int, at: datetime, now: datetime) -> list[Write]:
        """Issue 22: one recipient's copy of a message whose sender was deleted (its
        `MessageSent` no longer opens). The rows that recipient's view needs, with the TTL
        left since the message was sent: re-recording it must not extend its retention."""
        ttl = remaining_ttl(self.retention_s, b["created_at"], now)
        if ttl == 0:
            return []  # expired, as the live rows have
        mid = b["message_id"]
        return [
            self._message_row(b, ttl, ts),
            (self._recipient, (mid, b["recipient"], b["encrypted_key"], ttl, ts)),
            (self._listed, (b["recipient"], mid, ttl, ts)),
        ]

    def _message_row(self, b: dict[str, Any], ttl: int, ts: int) -> Write:
        """The `messages` row of a MessageSent or MessageKeptForRecipient body."""
        values = (
            b["message_id"],
            b["sender"],
            b["sender_device"],
            b["body"],
            list(b["attachments"]),
            b["created_at"],
            ttl,
            ts,
        )
        return self._message, values

    def _message_received(
        self, b: dict[str, Any], ts: int, at: datetime, now: datetime
    ) -> list[Write]:
        ttl = remaining_ttl(self.retention_s, at, now)
        if ttl == 0:
            return []
        values = (ttl, ts, b["received_at"], b["recipient_device"], b["message_id"], b["recipient"])
        return [(self._received, values)]

    def _acknowledged(self, b: dict[str, Any], ts: int, at: datetime, now: datetime) -> list[Write]:
        # The identity's version orders a device's acknowledgements: a late redelivery of an
        # older one cannot move the cursor back.
        values = (b["address"], b["device_id"], b["index"], b["acknowledged_at"], ts)
        return [(self._cursor, values)]
