"""`/api/v1/Devices`: an authenticated device adds, lists and deletes its identity's devices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import Authenticated, State
from api.errors import ApiError
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.schemas import (
    IDENTITY_COMMAND,
    Envelope,
    ListedDevice,
    RegisteredDevice,
    documented,
    refusals,
)
from api.signed_challenges import SignedChallenge, check_signed_challenge
from api.timestamps import iso

router = APIRouter(prefix="/Devices", tags=["devices"])

NOT_FOUND = "error.platform.recordNotFound"
WRONG_PASSWORD = "error.platform.validation.device.wrongPassword"  # noqa: S105 (a code)


class RegisterDeviceRequest(BaseModel):
    devicePassword: str = Field(min_length=8, max_length=200)
    signedChallenge: SignedChallenge


@router.post(
    "",
    status_code=201,
    responses=documented(Envelope[RegisteredDevice], 201, refuses=IDENTITY_COMMAND),
)
async def register_device(
    body: RegisterDeviceRequest, caller: Authenticated, state: State, key: MaybeIdempotent
) -> dict[str, Any]:
    """A new device of the caller's identity, proven by a challenge signed with its identity
    key: a stolen password alone cannot add devices."""
    row = await state.reads.identities.identity(caller.address)
    if row is None:
        raise ApiError(404, NOT_FOUND, "identity not found")
    challenge = check_signed_challenge(
        state, body.signedChallenge, row.public_key, "RegisterDevice", caller.address
    )
    now = datetime.now(UTC)
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    device_id, username = new_resource_id("DVC", idem), new_resource_id("USR", idem)
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("challenge", challenge.id),  # the gate first
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
        idem,
    )
    if idem is not None:  # a repeat answers with the first request's time
        first = await state.reads.identities.device(caller.address, device_id)
        now = first.created_at if first is not None else now
    return {
        "result": {
            "id": device_id,
            "username": username,
            "createdAt": iso(now),
            "createdByDevice": caller.device_id,
        }
    }


@router.get("", responses=documented(Envelope[list[ListedDevice]]))
async def list_devices(caller: Authenticated, state: State) -> dict[str, Any]:
    devices = await state.reads.identities.devices_of(caller.address)
    return {
        "result": [
            {
                "id": r.id,
                "username": r.username,
                "createdAt": iso(r.created_at),
                "createdByDevice": r.created_by_device,
            }
            for r in devices
            if r.active
        ]
    }


class DeviceOut(BaseModel):
    id: str
    username: str
    createdAt: str
    # None for an identity's first device, which no device created (it was a 500, issue 19).
    createdByDevice: str | None
    # Not recorded by this backbone: no login times, no language, no backup devices.
    lastLogin: None = None
    communicationLanguage: str = "en"
    isBackupDevice: bool = False


class DeviceResponse(BaseModel):
    result: DeviceOut


@router.get("/Self", response_model=DeviceResponse)
async def get_own_device(caller: Authenticated, state: State) -> DeviceResponse:
    row = await state.reads.identities.device(caller.address, caller.device_id)
    if row is None:
        raise ApiError(404, NOT_FOUND, "device not found")
    return DeviceResponse(
        result=DeviceOut(
            id=row.id,
            username=row.username,
            createdAt=iso(row.created_at),
            createdByDevice=row.created_by_device,
        )
    )


@router.delete("/Self", include_in_schema=False)
async def delete_self_is_not_allowed() -> None:
    """`DELETE /Devices/Self` would reach `DELETE /Devices/{device_id}` with the id "Self"
    and be a 400; the path has GET only, so it is a 405 (found by the fuzz run)."""
    raise StarletteHTTPException(405)


class ChangePasswordRequest(BaseModel):
    oldPassword: str = Field(min_length=1, max_length=200)
    newPassword: str = Field(min_length=8, max_length=200)


@router.put("/Self/Password", status_code=204, responses=refusals(*IDENTITY_COMMAND))
async def change_own_password(
    body: ChangePasswordRequest, caller: Authenticated, state: State
) -> Response:
    """Enmeshed's client sets a new random password on every onboarded device and keeps it
    whatever this answers, so the change must be durable before the 204."""
    device = await state.reads.identities.device(caller.address, caller.device_id)
    login = await state.reads.identities.login(device.username) if device is not None else None
    if login is None or not await state.verify_password(login.password_hash, body.oldPassword):
        raise ApiError(400, WRONG_PASSWORD, "oldPassword: not this device's password")
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "ChangeDevicePassword",
        {
            "address": caller.address,
            "device_id": caller.device_id,
            "password_hash": await state.hash_password(body.newPassword),
            "requested_at": datetime.now(UTC),
        },
    )
    return Response(status_code=204)


@router.delete("/{device_id}", status_code=204, responses=refusals(403))
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
