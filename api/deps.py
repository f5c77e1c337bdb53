"""Typed FastAPI dependencies: the process state and the authenticated device."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.state import ApiState
from backbone.security.tokens import InvalidToken


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
    # When the bearer token runs out: a long poll or a stream opened with it ends then, the
    # client reconnects with a fresh token (issue 19). None for callers built without one.
    expires_at: datetime | None = None

    def seconds_left(self, now: datetime | None = None) -> float:
        if self.expires_at is None:
            return float("inf")
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()


async def device_exists(state: ApiState, address: str, device_id: str) -> bool:
    device = await state.reads.identities.device(address, device_id)
    return device is not None and device.active


async def still_authorized(state: ApiState, caller: Caller) -> bool:
    """Whether the credentials a long-lived request was opened with still hold: its token
    has not expired and its device was not deleted since. Checked by the mailbox's long poll
    and both streams before they hand out entries, so that nothing reaches a device that has
    lost its right to it."""
    return caller.seconds_left() > 0 and await device_exists(
        state, caller.address, caller.device_id
    )


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
    if not await device_exists(state, claims.address, claims.device_id):
        raise ApiError(401, "error.platform.unauthorized", "the device no longer exists")
    return Caller(claims.address, claims.device_id, claims.expires_at)


Authenticated = Annotated[Caller, Depends(get_caller)]


async def get_optional_caller(request: Request, state: State) -> Caller | None:
    """The calling device if a token is sent (a bad one is an error), else None."""
    if not request.headers.get("authorization"):
        return None
    return await get_caller(request, state)


MaybeAuthenticated = Annotated[Caller | None, Depends(get_optional_caller)]


def client_address(request: Request) -> str:
    """The peer's IP address, which the shared failure limits count per (api/ratelimit.py).
    The socket's peer: a deployment behind a proxy must make uvicorn take it from the
    proxy's header (`--forwarded-allow-ips`), or every client looks like the proxy."""
    return request.client.host if request.client else "unknown"


async def get_client_address(request: Request) -> str:
    return client_address(request)


ClientAddress = Annotated[str, Depends(get_client_address)]
