"""`/api/v1/Devices`: an authenticated device adds, lists and deletes its identity's devices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from api.deps import Authenticated, State
from api.errors import ApiError
from api.signed_challenges import SignedChallenge, check_signed_challenge
from api.timestamps import iso
from backbone.security.challenges import CHALLENGE_INVALID
from backbone.security.ids import new_id
from streams.cassandra_io import run_prepared

router = APIRouter(prefix="/api/v1/Devices", tags=["devices"])

NOT_FOUND = "error.platform.recordNotFound"


class RegisterDeviceRequest(BaseModel):
    devicePassword: str = Field(min_length=8, max_length=200)
    signedChallenge: SignedChallenge


@router.post("", status_code=201)
async def register_device(
    body: RegisterDeviceRequest, caller: Authenticated, state: State
) -> dict[str, Any]:
    """A new device of the caller's identity, proven by a challenge signed with its identity
    key: a stolen password alone cannot add devices."""
    row = (
        await run_prepared(
            state.session,
            "SELECT public_key FROM identities WHERE address = ?",
            (caller.address,),
        )
    ).one()
    if row is None:
        raise ApiError(404, NOT_FOUND, "identity not found")
    challenge = check_signed_challenge(state, body.signedChallenge, row.public_key)
    if challenge.created_by not in (None, caller.address):
        raise ApiError(400, CHALLENGE_INVALID, "the challenge was issued to another identity")
    now = datetime.now(UTC)
    device_id, username = new_id("DVC"), new_id("USR")
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "AddDevice",
        {
            "challenge_id": challenge.id,
            "challenge_expires_at": challenge.expires_at,
            "address": caller.address,
            "device_id": device_id,
            "username": username,
            "password_hash": await state.hash_password(body.devicePassword),
            "created_by_device": caller.device_id,
            "requested_at": now,
        },
    )
    return {
        "result": {
            "id": device_id,
            "username": username,
            "createdAt": iso(now),
            "createdByDevice": caller.device_id,
        }
    }


@router.get("")
async def list_devices(caller: Authenticated, state: State) -> dict[str, Any]:
    rows = await run_prepared(
        state.session,
        "SELECT id, username, created_at, created_by_device, deleted_at "
        "FROM devices WHERE address = ?",
        (caller.address,),
    )
    return {
        "result": [
            {
                "id": r.id,
                "username": r.username,
                "createdAt": iso(r.created_at),
                "createdByDevice": r.created_by_device,
            }
            for r in rows
            if r.deleted_at is None
        ]
    }


@router.delete("/{device_id}", status_code=204)
async def delete_device(
    caller: Authenticated,
    state: State,
    device_id: str = Path(min_length=20, max_length=20, pattern=r"^DVC[A-Za-z0-9]{17}$"),
) -> Response:
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "DeleteDevice",
        {
            "address": caller.address,
            "device_id": device_id,
            "deleted_by_device": caller.device_id,
            "requested_at": datetime.now(UTC),
        },
    )
    return Response(status_code=204)
