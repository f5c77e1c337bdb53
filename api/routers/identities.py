"""`POST /api/v1/Identities` (anonymous, proven by a signed challenge) and the own identity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.clients import check_client
from api.deps import Authenticated, State
from api.errors import ApiError
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.routers import deletion_processes
from api.schemas import CreatedIdentity, Envelope, IdentityOut, documented
from api.signed_challenges import SignedChallenge, check_signed_challenge
from api.timestamps import iso
from backbone.security.addresses import address_from_public_key
from backbone.security.signatures import parse_public_key, serialize_public_key

router = APIRouter(prefix="/Identities", tags=["identities"])

MAX_PASSWORD = 200


class CreateIdentityRequest(BaseModel):
    clientId: str = Field(min_length=1, max_length=200)
    clientSecret: str = Field(min_length=1, max_length=200)
    identityPublicKey: str = Field(min_length=1, max_length=1000)
    identityVersion: int = Field(ge=1, le=100)
    devicePassword: str = Field(min_length=8, max_length=MAX_PASSWORD)
    signedChallenge: SignedChallenge


@router.post("", status_code=201, responses=documented(Envelope[CreatedIdentity], 201))
async def create_identity(
    body: CreateIdentityRequest, state: State, key: MaybeIdempotent
) -> dict[str, Any]:
    check_client(state.settings, body.clientId, body.clientSecret)
    # No identity yet: the key belongs to the OAuth client that creates it.
    idem = await bind_key(state.reads.idempotency, key, f"client:{body.clientId}")
    try:
        public_key = parse_public_key(body.identityPublicKey)
    except ValueError as exc:
        raise ApiError(
            400, "error.platform.validation.identity.invalidPublicKey", str(exc)
        ) from exc
    challenge = check_signed_challenge(state, body.signedChallenge, public_key, "CreateIdentity")
    address = address_from_public_key(public_key, state.settings.address_domain)
    now = datetime.now(UTC)
    device_id, username = new_resource_id("DVC", idem), new_resource_id("USR", idem)
    command = {
        "challenge_id": challenge.id,
        "challenge_expires_at": challenge.expires_at,
        "address": address,
        "public_key": public_key,
        "client_id": body.clientId,
        "identity_version": body.identityVersion,
        "device_id": device_id,
        "username": username,
        "password_hash": await state.hash_password(body.devicePassword),
        "requested_at": now,
    }
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("challenge", challenge.id),  # the gate first
        "CreateIdentity",
        command,
        idem,
    )
    if idem is not None:  # a repeat answers with the first request's time
        first = await state.reads.identities.identity(address)
        now = first.created_at if first is not None else now
    created = iso(now)
    return {
        "result": {
            "address": address,
            "createdAt": created,
            "device": {"id": device_id, "username": username, "createdAt": created},
        }
    }


class IsDeletedResult(BaseModel):
    isDeleted: bool
    deletionDate: str | None = None


class IsDeletedResponse(BaseModel):
    result: IsDeletedResult


@router.get("/IsDeleted", response_model=IsDeletedResponse)
async def is_deleted(
    username: Annotated[str, Query(min_length=1, max_length=MAX_PASSWORD)], state: State
) -> IsDeletedResponse:
    """Anonymous, as upstream: a client whose login fails asks whether its identity is gone
    (api/routers/deletion_processes.py, issue 22)."""
    deleted, when = await deletion_processes.is_deleted(state, username)
    return IsDeletedResponse(result=IsDeletedResult(isDeleted=deleted, deletionDate=when))


@router.get("/Self", responses=documented(Envelope[IdentityOut]))
async def get_self(caller: Authenticated, state: State) -> dict[str, Any]:
    row = await state.reads.identities.identity(caller.address)
    if row is None:
        raise ApiError(404, "error.platform.recordNotFound", "identity not found")
    status, grace_ends = await deletion_processes.own_status(state, caller.address)  # issue 22
    return {
        "result": {
            "address": row.address,
            "clientId": row.client_id,
            "publicKey": serialize_public_key(row.public_key),
            "identityVersion": row.identity_version,
            "createdAt": iso(row.created_at),
            "status": status,
            "deletionGracePeriodEndsAt": grace_ends,
        }
    }
