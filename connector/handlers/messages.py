"""Messages: sealed for every recipient and sent; received from the mailbox, opened,
stored and announced."""

from __future__ import annotations

import base64
import json
from typing import Any

from connector import crypto
from connector.crypto import PublicKeys
from connector.errors import ConnectorError, NotFound
from connector.handlers.common import Context, from_json, now, to_json
from connector.handlers.files import Files
from connector.repositories import MessageRecord
from schemas import byte_fields


class Messages:
    def __init__(self, ctx: Context, files: Files) -> None:
        self.ctx = ctx
        self.files = files  # attachments of received messages are learned there

    async def send(
        self, recipients: list[str], content: Any, attachments: list[str] | None = None
    ) -> dict[str, Any]:
        ctx = self.ctx
        if not recipients or len(set(recipients)) != len(recipients):
            raise ConnectorError(
                "error.connector.invalidRecipients",
                "recipients must be distinct and at least one",
            )
        secrets = {peer: ctx.keys.secret(ctx.relationship_with(peer)) for peer in recipients}
        files = [ctx.file(f) for f in attachments or []]
        keys = [{"id": f.id, "key": base64.b64encode(ctx.keys.file_key(f)).decode()} for f in files]
        plaintext = to_json({"content": content, "recipients": recipients, "attachments": keys})
        sealed = crypto.seal_message(ctx.identity.keys, ctx.address, plaintext, secrets)
        file_ids = [f.id for f in files]
        sent = await ctx.session.send_message(sealed.body, sealed.wrapped_keys, file_ids)
        ctx.data.messages.add(
            MessageRecord(
                id=sent["id"],
                address=ctx.address,
                direction="outgoing",
                sender=ctx.address,
                recipients=json.dumps(recipients),
                content=json.dumps(content),
                attachments=json.dumps(file_ids),
                mailbox_index=None,
                created_at=sent.get("createdAt") or now(),
            )
        )
        return self.get(sent["id"])

    def get(self, message_id: str) -> dict[str, Any]:
        found = self.ctx.data.messages.get(message_id)
        if found is None:
            raise NotFound("error.connector.messageNotFound", "message not found")
        return _dto(found)

    def page(
        self,
        peer: str | None = None,
        direction: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """In the order this Connector learned of them: incoming ones in mailbox order."""
        return [_dto(m) for m in self.ctx.data.messages.page(peer, direction, limit, offset)]

    async def received(self, index: int, payload: dict[str, Any]) -> None:
        """Mailbox entry `index` brought a message: opened, stored and announced once."""
        ctx = self.ctx
        if ctx.data.messages.known(payload["messageId"]):
            return
        sender = payload["createdBy"]
        if "body" in payload:
            body = byte_fields.decode(payload["body"])
        else:  # too large to ride in the entry
            body = byte_fields.decode((await ctx.session.message(payload["messageId"]))["body"])
        relationship = ctx.relationship_with(sender, active=False)
        plaintext = crypto.open_message(
            body,
            byte_fields.decode(payload["encryptedKey"]),
            sender,
            PublicKeys.from_json(from_json(relationship.peer_keys)),
            ctx.address,
            ctx.keys.secret(relationship),
        )
        inner = from_json(plaintext)
        attached = inner.get("attachments", [])
        for file in attached:  # before the message: whoever sees it can download them
            await self.files.learn(file["id"], byte_fields.decode(file["key"]))
        record = MessageRecord(
            id=payload["messageId"],
            address=ctx.address,
            direction="incoming",
            sender=sender,
            recipients=json.dumps(inner.get("recipients", [ctx.address])),
            content=json.dumps(inner["content"]),
            attachments=json.dumps([f["id"] for f in attached]),
            mailbox_index=index,
            created_at=payload.get("createdAt") or now(),
        )
        with ctx.data.change() as work:
            work.messages.add(record)
            work.announce("MessageReceived", _dto(record))


def _dto(m: MessageRecord) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction,
        "createdBy": m.sender,
        "recipients": from_json(m.recipients),
        "content": from_json(m.content),
        "attachments": from_json(m.attachments),
        "createdAt": m.created_at,
    }
