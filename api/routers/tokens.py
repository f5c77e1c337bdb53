"""`/api/v1/Tokens`: encrypted content shared by id (a QR code), until it expires."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, field_validator

from api.access import check_readable
from api.content import BASE64_PATTERN, check_expiry, decode_content, encode_content
from api.deps import Authenticated, ClientAddress, MaybeAuthenticated, State
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.paging import Ids, Paging
from api.schemas import Created, Envelope, PagedEnvelope, TokenOut, documented
from api.timestamps import iso
from backbone.security.addresses import is_valid_address
from store.readmodels.sharing import Token

router = APIRouter(prefix="/Tokens", tags=["tokens"])

TokenId = Annotated[str, Path(pattern=r"^TOK[A-Za-z0-9]{17}$")]


class CreateTokenRequest(BaseModel):
    content: str = Field(min_length=1, max_length=48_000, pattern=BASE64_PATTERN)
    expiresAt: datetime
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
async def create_token(
    body: CreateTokenRequest, caller: Authenticated, state: State, key: MaybeIdempotent
) -> Any:
    content = decode_content(body.content, "content")
    expires_at = check_expiry(body.expiresAt)
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    token_id, now = new_resource_id("TOK", idem), datetime.now(UTC)
    password_hash = await state.hash_password(body.password) if body.password else None
    await state.bus.send(
        state.topics.token_commands,
        state.envelopes.aggregate_key("token", token_id),
        "CreateToken",
        {
            "token_id": token_id,
            "owner": caller.address,
            "owner_device": caller.device_id,
            "content": content,
            "expires_at": expires_at,
            "for_identity": body.forIdentity,
            "password_hash": password_hash,
            "requested_at": now,
        },
        idem,
    )
    if idem is not None:  # a repeat answers with the first request's time
        first = await state.reads.tokens.get(token_id)
        now = first.created_at if first is not None else now
    return {"result": {"id": token_id, "createdAt": iso(now)}}


@router.get("/{token_id}", responses=documented(Envelope[TokenOut], refuses=(403,)))
async def get_token(
    token_id: TokenId,
    caller: MaybeAuthenticated,
    state: State,
    client: ClientAddress,
    password: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Anonymous reads are allowed: whoever holds the id (the QR code) may read the token,
    unless it is for one identity or needs a password."""
    found = await state.reads.tokens.get(token_id)
    row = await check_readable(state, found, caller, password, "token", client)
    return {"result": _dto(row)}


@router.get("", responses=documented(PagedEnvelope[TokenOut]))
async def list_tokens(caller: Authenticated, state: State, page: Paging, ids: Ids = None) -> Any:
    owned = await state.reads.tokens.owned_by(caller.address, set(ids) if ids else None)
    return page.envelope([_dto(t) for t in owned])


@router.delete("/{token_id}", status_code=204)
async def delete_token(token_id: TokenId, caller: Authenticated, state: State) -> Response:
    await state.bus.send(
        state.topics.token_commands,
        state.envelopes.aggregate_key("token", token_id),
        "DeleteToken",
        {"token_id": token_id, "actor": caller.address, "requested_at": datetime.now(UTC)},
    )
    return Response(status_code=204)


def _dto(row: Token) -> dict[str, Any]:
    return {
        "id": row.id,
        "createdBy": row.owner,
        "createdByDevice": row.owner_device,
        "content": encode_content(row.content),
        "createdAt": iso(row.created_at),
        "expiresAt": iso(row.expires_at),
        "forIdentity": row.for_identity,
        "passwordProtected": row.password_hash is not None,
    }
