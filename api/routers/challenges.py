"""`POST /api/v1/Challenges`: a backbone-signed challenge, anonymous or for a device."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from api.deps import State, get_caller
from api.schemas import ChallengeOut, Envelope, documented

router = APIRouter(prefix="/Challenges", tags=["challenges"])


@router.post("", status_code=201, responses=documented(Envelope[ChallengeOut], 201))
async def create_challenge(request: Request, state: State) -> dict[str, object]:
    created_by = created_by_device = None
    if request.headers.get("authorization"):
        caller = await get_caller(request, state)  # a bad token is an error, not anonymous
        created_by, created_by_device = caller.address, caller.device_id
    challenge = state.challenges.issue(
        datetime.now(UTC), created_by=created_by, created_by_device=created_by_device
    )
    return {"result": challenge.to_dto()}
