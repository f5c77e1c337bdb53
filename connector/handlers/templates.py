"""Relationship templates and tokens: our own, sealed and uploaded; a peer's, loaded by
reference and opened."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from connector import crypto
from connector.crypto import PublicKeys
from connector.errors import ConnectorError, NotFound
from connector.handlers.common import Context, from_json, now, open_json, to_json
from connector.repositories import TemplateRecord, TokenRecord
from schemas import byte_fields

TOKEN_LIFETIME = timedelta(days=30)  # when the template sets no expiry of its own


class Templates:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self, content: Any, expires_at: datetime | None = None, max_allocations: int | None = None
    ) -> dict[str, Any]:
        ctx = self.ctx
        key = crypto.new_content_key()
        public = ctx.identity.keys.public().to_json()
        sealed = crypto.seal(key, to_json({"keys": public, "content": content}), b"template")
        created = await ctx.session.create_template(sealed, expires_at, max_allocations)
        template_id = created["id"]
        sealed_key = ctx.keys.seal_template_key(key, template_id)
        ctx.data.templates.add(
            TemplateRecord(
                id=template_id,
                address=ctx.address,
                owner=ctx.address,
                sealed_key=sealed_key,
                owner_keys=json.dumps(public),
                content=json.dumps(content),
                expires_at=created.get("expiresAt"),
                created_at=now(),
            )
        )
        return self.get(template_id)

    async def token_for(self, template_id: str) -> dict[str, Any]:
        """A token that leads to one of our templates: its reference fits a QR code."""
        template = self.ctx.template(template_id)
        if template.owner != self.ctx.address:
            raise NotFound("error.connector.templateNotFound", "no own template")
        inner = {
            "type": "RelationshipTemplate",
            "templateId": template_id,
            "key": base64.b64encode(self.ctx.keys.template_key(template)).decode(),
        }
        if template.expires_at:
            expires = datetime.fromisoformat(template.expires_at)
        else:
            expires = datetime.now(UTC) + TOKEN_LIFETIME
        return await self._create_token(inner, expires)

    async def create_token(self, content: Any, expires_at: datetime) -> dict[str, Any]:
        return await self._create_token({"type": "Content", "content": content}, expires_at)

    async def _create_token(self, inner: dict[str, Any], expires_at: datetime) -> dict[str, Any]:
        ctx = self.ctx
        key = crypto.new_content_key()
        sealed = crypto.seal(key, to_json(inner), b"token")
        created = await ctx.session.create_token(sealed, expires_at)
        reference = crypto.encode_reference(created["id"], key)
        expires = created.get("expiresAt") or expires_at.isoformat()
        ctx.data.tokens.add(
            TokenRecord(
                id=created["id"],
                address=ctx.address,
                reference=reference,
                content=json.dumps(inner),
                expires_at=expires,
                created_at=now(),
            )
        )
        return {
            "id": created["id"],
            "reference": reference,
            "expiresAt": expires,
            "content": _public_token_content(inner),
        }

    async def load_reference(self, reference: str) -> dict[str, Any]:
        """A peer's template (by a template or token reference) or a content token."""
        try:
            object_id, key = crypto.decode_reference(reference.strip())
        except ValueError as exc:
            raise ConnectorError("error.connector.invalidReference", str(exc)) from exc
        if object_id.startswith("TOK"):
            token = await self.ctx.session.token_content(object_id)
            inner = open_json(key, token["content"], b"token", "token")
            if inner.get("type") == "RelationshipTemplate":
                template_key = byte_fields.decode(inner["key"])
                return await self._load_template(inner["templateId"], template_key)
            return {
                "type": "Token",
                "id": object_id,
                "createdBy": token["createdBy"],
                "content": inner.get("content"),
            }
        if object_id.startswith("RLT"):
            return await self._load_template(object_id, key)
        raise ConnectorError("error.connector.invalidReference", "unknown object type")

    async def _load_template(self, template_id: str, key: bytes) -> dict[str, Any]:
        ctx = self.ctx
        template = await ctx.session.template(template_id)
        inner = open_json(key, template["content"], b"template", "template")
        try:
            PublicKeys.from_json(inner["keys"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ConnectorError("error.connector.invalidTemplate", "no keys") from exc
        sealed_key = ctx.keys.seal_template_key(key, template_id)
        ctx.data.templates.add_unless_known(
            TemplateRecord(
                id=template_id,
                address=ctx.address,
                owner=template["createdBy"],
                sealed_key=sealed_key,
                owner_keys=json.dumps(inner["keys"]),
                content=json.dumps(inner.get("content")),
                expires_at=template.get("expiresAt"),
                created_at=now(),
            )
        )
        return self.get(template_id)

    def get(self, template_id: str) -> dict[str, Any]:
        return self._dto(self.ctx.template(template_id))

    def all(self) -> list[dict[str, Any]]:
        return [self._dto(t) for t in self.ctx.data.templates.in_creation_order()]

    def tokens(self) -> list[dict[str, Any]]:
        return [
            {
                "id": t.id,
                "reference": t.reference,
                "expiresAt": t.expires_at,
                "content": _public_token_content(from_json(t.content)),
                "createdAt": t.created_at,
            }
            for t in self.ctx.data.tokens.in_creation_order()
        ]

    def _dto(self, template: TemplateRecord) -> dict[str, Any]:
        own = template.owner == self.ctx.address
        key = self.ctx.keys.template_key(template) if own else None
        return {
            "type": "RelationshipTemplate",
            "id": template.id,
            "createdBy": template.owner,
            "isOwn": own,
            "content": from_json(template.content),
            "expiresAt": template.expires_at,
            "reference": crypto.encode_reference(template.id, key) if key is not None else None,
            "createdAt": template.created_at,
        }


def _public_token_content(inner: dict[str, Any]) -> Any:
    # The template key inside a template token stays in the Connector.
    if inner.get("type") == "RelationshipTemplate":
        return {"type": "RelationshipTemplate", "templateId": inner["templateId"]}
    return inner.get("content")
