"""Typed FastAPI dependencies: the process state and the authenticated device."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.state import ApiState
from backbone.security.tokens import InvalidToken
from streams.cassandra_io import run_prepared


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop on every request.
async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.backbone
    return state


State = Annotated[ApiState, Depends(get_state)]


@dataclass(frozen=True)
class Caller:
    address: str
    device_id: str


async def get_caller(request: Request, state: State) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "error.platform.unauthorized", "a bearer token is required")
    try:
        claims = state.tokens.verify(token, datetime.now(UTC))
    except InvalidToken as exc:
        raise ApiError(
            401, "error.platform.unauthorized", "the token is invalid or expired"
        ) from exc
    # A deleted device's tokens stop working at once, not when they expire.
    row = (
        await run_prepared(
            state.session,
            "SELECT deleted_at FROM devices WHERE address = ? AND id = ?",
            (claims.address, claims.device_id),
        )
    ).one()
    if row is None or row.deleted_at is not None:
        raise ApiError(401, "error.platform.unauthorized", "the device no longer exists")
    return Caller(claims.address, claims.device_id)


Authenticated = Annotated[Caller, Depends(get_caller)]


async def get_optional_caller(request: Request, state: State) -> Caller | None:
    """The calling device if a token is sent (a bad one is an error), else None."""
    if not request.headers.get("authorization"):
        return None
    return await get_caller(request, state)


MaybeAuthenticated = Annotated[Caller | None, Depends(get_optional_caller)]
