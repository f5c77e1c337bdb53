"""Relationships: requested from a peer's template, answered, and kept in step with what
the backbone reports through the mailbox."""

from __future__ import annotations

import json
from typing import Any

from connector import crypto
from connector.crypto import PublicKeys
from connector.errors import ConnectorError
from connector.handlers.common import Context, from_json, now, open_json, to_json
from connector.repositories import RelationshipRecord


class Relationships:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def request(self, template_id: str, content: Any) -> dict[str, Any]:
        ctx = self.ctx
        template = ctx.template(template_id)
        if template.owner == ctx.address:
            raise ConnectorError(
                "error.connector.ownTemplate", "a relationship to yourself cannot be requested"
            )
        peer_keys = PublicKeys.from_json(from_json(template.owner_keys))
        mine = ctx.identity.keys.public().to_json()
        sealed = crypto.seal(
            ctx.keys.template_key(template), to_json({"keys": mine, "content": content}), b"request"
        )
        created = await ctx.session.request_relationship(template_id, sealed)
        secret = crypto.relationship_secret(ctx.identity.keys, peer_keys, template_id)
        at = now()
        ctx.data.relationships.add_unless_known(
            RelationshipRecord(
                id=created["id"],
                address=ctx.address,
                peer=template.owner,
                template_id=template_id,
                direction="outgoing",
                status=created["status"],
                peer_keys=template.owner_keys,
                sealed_secret=ctx.keys.seal_secret(secret, created["id"]),
                creation_content=json.dumps(content),
                response_content=None,
                created_at=at,
                updated_at=at,
            )
        )
        return self.get(created["id"])

    async def step(self, relationship_id: str, step: str, content: Any = None) -> dict[str, Any]:
        """Accept, Reject, Revoke, Terminate …: the backbone decides what is allowed."""
        ctx = self.ctx
        relationship = ctx.relationship(relationship_id)
        response = None
        if step == "Accept":
            secret = ctx.keys.secret(relationship)
            response = crypto.seal(secret, to_json({"content": content}), b"response")
        changed = await ctx.session.relationship_step(relationship_id, step, response)
        self._record_status(
            relationship, changed["status"], json.dumps(content) if response else None
        )
        return self.get(relationship_id)

    def get(self, relationship_id: str) -> dict[str, Any]:
        return _dto(self.ctx.relationship(relationship_id))

    def all(self, status: str | None = None) -> list[dict[str, Any]]:
        every = self.ctx.data.relationships.in_creation_order()
        return [_dto(r) for r in every if status in (None, r.status)]

    async def changed(self, relationship_id: str) -> None:
        """The backbone says a relationship changed (a mailbox entry): a new request to one
        of our templates is stored and announced, a known one gets its new status."""
        ctx = self.ctx
        remote = await ctx.session.relationship(relationship_id)
        known = ctx.data.relationships.known(relationship_id)
        if known is not None:
            response = None
            if remote.get("creationResponseContent") and known.response_content is None:
                opened = open_json(
                    ctx.keys.secret(known),
                    remote["creationResponseContent"],
                    b"response",
                    "relationship response",
                )
                response = json.dumps(opened.get("content"))
            self._record_status(known, remote["status"], response)
            return
        if remote["to"] != ctx.address:
            return  # requested from another device of ours: nothing we can open
        template = ctx.template(remote["relationshipTemplateId"])
        inner = open_json(
            ctx.keys.template_key(template),
            remote["creationContent"],
            b"request",
            "relationship request",
        )
        peer_keys = PublicKeys.from_json(inner["keys"])
        secret = crypto.relationship_secret(ctx.identity.keys, peer_keys, template.id)
        at = now()
        record = RelationshipRecord(
            id=relationship_id,
            address=ctx.address,
            peer=remote["from"],
            template_id=template.id,
            direction="incoming",
            status=remote["status"],
            peer_keys=json.dumps(inner["keys"]),
            sealed_secret=ctx.keys.seal_secret(secret, relationship_id),
            creation_content=json.dumps(inner.get("content")),
            response_content=None,
            created_at=at,
            updated_at=at,
        )
        with ctx.data.change() as work:
            work.relationships.add(record)
            work.announce(
                "RelationshipRequested",
                {
                    "id": relationship_id,
                    "peer": remote["from"],
                    "status": remote["status"],
                    "templateId": template.id,
                    "creationContent": inner.get("content"),
                },
            )

    def _record_status(
        self, relationship: RelationshipRecord, status: str, response: str | None
    ) -> None:
        """A new status (and response content), announced if the status changed."""
        with self.ctx.data.change() as work:
            old, stored_response = work.relationships.status(relationship.id)
            if old == status and (response is None or stored_response is not None):
                return
            work.relationships.set_status(relationship.id, status, response, now())
            if old != status:
                work.announce(
                    "RelationshipChanged",
                    {
                        "id": relationship.id,
                        "peer": relationship.peer,
                        "oldStatus": old,
                        "status": status,
                    },
                )


def _dto(r: RelationshipRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "peer": r.peer,
        "templateId": r.template_id,
        "direction": r.direction,
        "status": r.status,
        "creationContent": from_json(r.creation_content),
        "responseContent": from_json(r.response_content) if r.response_content else None,
        "createdAt": r.created_at,
        "updatedAt": r.updated_at,
    }
