"""Messages: tables `messages`, `message_recipients` and `messages_by_identity`, written by
the message projection (streams/message_readmodels.py `MessageProjection`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.readmodels.base import Queries, columns


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    sender: str
    sender_device: str
    body: bytes
    attachments: list[str] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    # The message's key, wrapped for this recipient by the sender.
    encrypted_key: bytes
    received_at: datetime | None
    received_by_device: str | None


_MESSAGE = f"SELECT {columns(Message)} FROM messages WHERE id = ?"  # noqa: S608
_RECIPIENTS = f"SELECT {columns(Recipient)} FROM message_recipients WHERE message_id = ?"  # noqa: S608


class MessageReads(Queries):
    async def get(self, message_id: str) -> Message | None:
        return await self._one(Message, _MESSAGE, (message_id,))

    async def recipients(self, message_id: str) -> list[Recipient]:
        return await self._all(Recipient, _RECIPIENTS, (message_id,))

    async def ids_for(self, address: str) -> list[str]:
        """The messages the identity sent or received."""
        rows = await self._run("SELECT id FROM messages_by_identity WHERE address = ?", (address,))
        return [r.id for r in rows]
