"""Read models of messages and mailbox cursors, and their projection.

A message's ciphertext is stored once (`messages`); each recipient has a row with its own
wrapped key and receipt (`message_recipients`); `messages_by_identity` lists a message for
its sender and every recipient. Messages keep the retention the operator configures (TTL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from store.cassandra import execute

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

Handler = Callable[[dict[str, Any], int], Awaitable[None]]


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

    def handlers(self) -> dict[str, Handler]:
        return {
            "MessageSent": self._sent,
            "MessageReceived": self._message_received,
            "MailboxAcknowledged": self._acknowledged,
            "MessageKeptForRecipient": self._kept,
        }

    async def _run(self, statement: Any, *params: Any) -> None:
        await execute(self.session, statement, params)

    async def _sent(self, b: dict[str, Any], ts: int) -> None:
        ttl, mid = self.retention_s, b["message_id"]
        # Independent idempotent upserts (each carries the event's timestamp): written
        # concurrently, 1 + N + (N+1) round trips in the time of one.
        writes = [
            self._run(
                self._message,
                mid,
                b["sender"],
                b["sender_device"],
                b["body"],
                list(b["attachments"]),
                b["created_at"],
                ttl,
                ts,
            )
        ]
        for r in b["recipients"]:
            writes.append(
                self._run(self._recipient, mid, r["address"], r["encrypted_key"], ttl, ts)
            )
        for address in {b["sender"], *(r["address"] for r in b["recipients"])}:
            writes.append(self._run(self._listed, address, mid, ttl, ts))
        await asyncio.gather(*writes)

    async def _kept(self, b: dict[str, Any], ts: int) -> None:
        """Issue 22: one recipient's copy of a message whose sender was deleted (its
        `MessageSent` no longer opens). The rows that recipient's view needs, with the TTL
        left since the message was sent: re-recording it must not extend its retention."""
        created = b["created_at"]
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        ttl = self.retention_s - int((datetime.now(UTC) - created).total_seconds())
        if ttl <= 0:
            return  # expired, as the live rows have
        mid = b["message_id"]
        await asyncio.gather(
            self._run(
                self._message,
                mid,
                b["sender"],
                b["sender_device"],
                b["body"],
                list(b["attachments"]),
                created,
                ttl,
                ts,
            ),
            self._run(self._recipient, mid, b["recipient"], b["encrypted_key"], ttl, ts),
            self._run(self._listed, b["recipient"], mid, ttl, ts),
        )

    async def _message_received(self, b: dict[str, Any], ts: int) -> None:
        await self._run(
            self._received,
            self.retention_s,
            ts,
            b["received_at"],
            b["recipient_device"],
            b["message_id"],
            b["recipient"],
        )

    async def _acknowledged(self, b: dict[str, Any], ts: int) -> None:
        # The identity's version orders a device's acknowledgements: a late redelivery of an
        # older one cannot move the cursor back.
        await self._run(
            self._cursor, b["address"], b["device_id"], b["index"], b["acknowledged_at"], ts
        )
