"""`/api/v1/Relationships`: requests against a template, and every later step of the pair.

Only the two parties see a relationship or act on it; to anyone else it does not exist.
The rules of which step is allowed when live in domain/relationship_decider.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.content import BASE64_PATTERN, INVALID, decode_content, encode_content
from api.deps import Authenticated, Caller, State
from api.errors import ApiError
from api.idempotency import (
    IdempotencyKey,
    MaybeIdempotent,
    bind_key,
    new_resource_id,
)
from api.paging import Ids, Paging
from api.routers.deletion_processes import peer_deletion_info
from api.schemas import Envelope, PagedEnvelope, RelationshipOut, documented
from api.state import ApiState
from api.timestamps import iso
from backbone.security.addresses import is_valid_address
from domain.relationship_decider import ALREADY_EXISTS, OPEN_STATUSES, pair_id
from store.readmodels.relationships import Relationship

router = APIRouter(prefix="/Relationships", tags=["relationships"])

NOT_FOUND = "error.platform.recordNotFound"
RelationshipId = Annotated[str, Path(pattern=r"^REL[A-Za-z0-9]{17}$")]
# What every step answers: the relationship as it is after it.
ONE = Envelope[RelationshipOut]


class CreateRelationshipRequest(BaseModel):
    relationshipTemplateId: str = Field(pattern=r"^RLT[A-Za-z0-9]{17}$")
    creationContent: str = Field(min_length=1, max_length=48_000, pattern=BASE64_PATTERN)


class AcceptRequest(BaseModel):
    creationResponseContent: str | None = Field(
        default=None, min_length=1, max_length=48_000, pattern=BASE64_PATTERN
    )


@router.post("", status_code=201, responses=documented(ONE, 201, refuses=(404,)))
async def request_relationship(
    body: CreateRelationshipRequest, caller: Authenticated, state: State, key: MaybeIdempotent
) -> Any:
    content = decode_content(body.creationContent, "creationContent")
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    relationship_id = new_resource_id("REL", idem)
    # The template's decider allocates, then the pair's decider opens the relationship and
    # answers; a 201 means it is readable now.
    await state.bus.send(
        state.topics.template_commands,
        state.envelopes.aggregate_key("template", body.relationshipTemplateId),
        "RequestRelationship",
        {
            "template_id": body.relationshipTemplateId,
            "relationship_id": relationship_id,
            "requester": caller.address,
            "requester_device": caller.device_id,
            "creation_content": content,
            "requested_at": datetime.now(UTC),
        },
        idem,
    )
    return {"result": await _dto(state, await _own(state, relationship_id, caller), caller.address)}


class CanCreateResult(BaseModel):
    canCreate: bool
    code: str | None = None


class CanCreateResponse(BaseModel):
    result: CanCreateResult


# Before `/{relationship_id}`: that path would take "CanCreate" as an id and refuse it.
@router.get("/CanCreate", response_model=CanCreateResponse, response_model_exclude_none=True)
async def can_create(
    peer: Annotated[str, Query(min_length=1, max_length=80)], caller: Authenticated, state: State
) -> CanCreateResponse:
    """Whether the caller may request a relationship with `peer` now: the client asks before
    every request. The pair's decider still decides; this reads its projection."""
    if not is_valid_address(peer) or peer == caller.address:
        raise ApiError(400, INVALID, "peer: not a valid peer address")
    links = await state.reads.relationships.with_peer(caller.address, peer)
    if any(link.status in OPEN_STATUSES for link in links):
        return CanCreateResponse(result=CanCreateResult(canCreate=False, code=ALREADY_EXISTS))
    return CanCreateResponse(result=CanCreateResult(canCreate=True))


@router.get("/{relationship_id}", responses=documented(ONE))
async def get_relationship(
    relationship_id: RelationshipId, caller: Authenticated, state: State
) -> Any:
    return {"result": await _dto(state, await _own(state, relationship_id, caller), caller.address)}


@router.get("", responses=documented(PagedEnvelope[RelationshipOut]))
async def list_relationships(
    caller: Authenticated, state: State, page: Paging, ids: Ids = None
) -> Any:
    wanted = set(ids) if ids else None
    found = [
        await _dto(state, await _own(state, relationship_id, caller), caller.address)
        for relationship_id in await state.reads.relationships.ids_of(caller.address)
        if wanted is None or relationship_id in wanted
    ]
    return page.envelope(found)


async def _act(
    state: ApiState,
    caller: Caller,
    relationship_id: str,
    action: str,
    content: bytes | None,
    key: IdempotencyKey | None,
) -> Any:
    row = await _own(state, relationship_id, caller)
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    await state.bus.send(
        state.topics.relationship_commands,
        state.envelopes.aggregate_key("pair", pair_id(row.from_address, row.to_address)),
        "ChangeRelationship",
        {
            "relationship_id": relationship_id,
            "action": action,
            "actor": caller.address,
            "actor_device": caller.device_id,
            "content": content,
            "requested_at": datetime.now(UTC),
        },
        idem,
    )
    return {"result": await _dto(state, await _own(state, relationship_id, caller), caller.address)}


@router.put("/{relationship_id}/Accept", responses=documented(ONE))
async def accept(
    relationship_id: RelationshipId,
    caller: Authenticated,
    state: State,
    key: MaybeIdempotent,
    body: AcceptRequest | None = None,
) -> Any:
    raw = body.creationResponseContent if body else None
    content = decode_content(raw, "creationResponseContent") if raw else None
    return await _act(state, caller, relationship_id, "Accept", content, key)


def _simple_action(path: str, action: str) -> None:
    async def handler(
        relationship_id: RelationshipId, caller: Authenticated, state: State, key: MaybeIdempotent
    ) -> Any:
        return await _act(state, caller, relationship_id, action, None, key)

    handler.__name__ = f"relationship_{action}"
    router.put(f"/{{relationship_id}}/{path}", name=action, responses=documented(ONE))(handler)


for _path, _action in (
    ("Reject", "Reject"),
    ("Revoke", "Revoke"),
    ("Terminate", "Terminate"),
    ("Reactivate", "RequestReactivation"),
    ("Reactivate/Accept", "AcceptReactivation"),
    ("Reactivate/Reject", "RejectReactivation"),
    ("Reactivate/Revoke", "RevokeReactivation"),
    ("Decompose", "Decompose"),
):
    _simple_action(_path, _action)


async def _own(state: ApiState, relationship_id: str, caller: Caller) -> Relationship:
    row = await state.reads.relationships.get(relationship_id)
    if row is None or not row.has_party(caller.address):
        raise ApiError(404, NOT_FOUND, "relationship not found")
    return row


async def _dto(state: ApiState, row: Relationship, viewer: str) -> dict[str, Any]:
    audit = await state.reads.relationships.audit(row.id)
    return {
        "id": row.id,
        "relationshipTemplateId": row.template_id,
        "from": row.from_address,
        "to": row.to_address,
        "status": row.status,
        "creationContent": encode_content(row.creation_content),
        "creationResponseContent": encode_content(row.creation_response_content),
        "reactivationRequestedBy": row.reactivation_requested_by,
        "createdAt": iso(row.created_at),
        "auditLog": [
            {
                "reason": a.reason,
                "oldStatus": a.old_status,
                "newStatus": a.new_status,
                "createdBy": a.created_by,
                "createdByDevice": a.created_by_device,
                "createdAt": iso(a.created_at),
            }
            for a in audit
        ],
        # Issue 22: the other party's pending or finished deletion, as `viewer` sees it.
        "peerDeletionInfo": await peer_deletion_info(state, row.id, viewer),
    }
