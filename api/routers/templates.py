"""`/api/v1/RelationshipTemplates`: what a peer needs to request a relationship."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, field_validator

from api.access import check_readable
from api.content import BASE64_PATTERN, check_expiry, decode_content, encode_content
from api.deps import Authenticated, ClientAddress, State
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.paging import Ids, Paging
from api.schemas import Created, Envelope, PagedEnvelope, TemplateOut, documented
from api.timestamps import iso
from backbone.security.addresses import is_valid_address
from store.readmodels.sharing import Template

router = APIRouter(prefix="/RelationshipTemplates", tags=["relationship templates"])

TemplateId = Annotated[str, Path(pattern=r"^RLT[A-Za-z0-9]{17}$")]
MAX_ALLOCATIONS = 1_000_000


class CreateTemplateRequest(BaseModel):
    content: str = Field(min_length=1, max_length=48_000, pattern=BASE64_PATTERN)
    expiresAt: datetime | None = None
    maxNumberOfAllocations: int | None = Field(default=None, ge=1, le=MAX_ALLOCATIONS)
    forIdentity: str | None = Field(default=None, max_length=80)

    @field_validator("forIdentity")
    @classmethod
    def _for_an_address(cls, value: str | None) -> str | None:
        # Anything else made an object nobody could ever read (issue 19).
        if value is not None and not is_valid_address(value):
            raise ValueError("not an identity address")
        return value

    password: str | None = Field(default=None, min_length=1, max_length=200)


@router.post("", status_code=201, responses=documented(Envelope[Created], 201))
async def create_template(
    body: CreateTemplateRequest, caller: Authenticated, state: State, key: MaybeIdempotent
) -> Any:
    content = decode_content(body.content, "content")
    expires_at = check_expiry(body.expiresAt)
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    template_id, now = new_resource_id("RLT", idem), datetime.now(UTC)
    password_hash = await state.hash_password(body.password) if body.password else None
    await state.bus.send(
        state.topics.template_commands,
        state.envelopes.aggregate_key("template", template_id),
        "CreateTemplate",
        {
            "template_id": template_id,
            "owner": caller.address,
            "owner_device": caller.device_id,
            "content": content,
            "expires_at": expires_at,
            "max_allocations": body.maxNumberOfAllocations,
            "for_identity": body.forIdentity,
            "password_hash": password_hash,
            "requested_at": now,
        },
        idem,
    )
    if idem is not None:  # a repeat answers with the first request's time
        first = await state.reads.templates.get(template_id)
        now = first.created_at if first is not None else now
    return {"result": {"id": template_id, "createdAt": iso(now)}}


@router.get("/{template_id}", responses=documented(Envelope[TemplateOut], refuses=(403,)))
async def get_template(
    template_id: TemplateId,
    caller: Authenticated,
    state: State,
    client: ClientAddress,
    password: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    found = await state.reads.templates.get(template_id)
    row = await check_readable(state, found, caller, password, "relationship template", client)
    if row.password_hash is not None and caller.address != row.owner:
        # The password was right: the template's decider records that this peer collected
        # it, the one way it may request a relationship against it later (issue 19; the
        # request carries no password, in Enmeshed as here).
        await state.bus.send(
            state.topics.template_commands,
            state.envelopes.aggregate_key("template", template_id),
            "CollectTemplate",
            {
                "template_id": template_id,
                "collector": caller.address,
                "requested_at": datetime.now(UTC),
            },
        )
    return {"result": _dto(row)}


@router.get("", responses=documented(PagedEnvelope[TemplateOut]))
async def list_templates(caller: Authenticated, state: State, page: Paging, ids: Ids = None) -> Any:
    owned = await state.reads.templates.owned_by(caller.address, set(ids) if ids else None)
    return page.envelope([_dto(t) for t in owned])


@router.delete("/{template_id}", status_code=204)
async def delete_template(template_id: TemplateId, caller: Authenticated, state: State) -> Response:
    await state.bus.send(
        state.topics.template_commands,
        state.envelopes.aggregate_key("template", template_id),
        "DeleteTemplate",
        {"template_id": template_id, "actor": caller.address, "requested_at": datetime.now(UTC)},
    )
    return Response(status_code=204)


def _dto(row: Template) -> dict[str, Any]:
    return {
        "id": row.id,
        "createdBy": row.owner,
        "createdByDevice": row.owner_device,
        "maxNumberOfAllocations": row.max_allocations,
        "expiresAt": iso(row.expires_at) if row.expires_at else None,
        "forIdentity": row.for_identity,
        "content": encode_content(row.content),
        "createdAt": iso(row.created_at),
        "passwordProtected": row.password_hash is not None,
    }
