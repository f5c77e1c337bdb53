"""`POST /connect/token`: the OAuth2 password grant that turns device credentials into a
short-lived bearer token, as the Enmeshed Backbone's token endpoint does."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api import metrics
from api.clients import check_client
from api.deps import State, client_address
from api.errors import ApiError
from api.ratelimit import PER_ADDRESS
from api.state import ApiState
from backbone.security.passwords import hash_password

router = APIRouter(tags=["authentication"])

MAX_FIELD = 200
INVALID_GRANT = "invalid_grant"
TOO_MANY_FAILED_LOGINS = "too_many_failed_logins"


@functools.cache
def _decoy_hash() -> str:
    # An unknown username still costs one Argon2id check, so response time does not tell
    # which usernames exist.
    return hash_password("decoy password, never a real one")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")


@router.post(
    "/connect/token",
    response_model=None,
    responses={200: {"model": TokenResponse, "description": "a bearer token for the device"}},
)
async def token(
    request: Request,
    state: State,
    grant_type: Annotated[str, Form(max_length=MAX_FIELD)],
    username: Annotated[str, Form(max_length=MAX_FIELD)],
    password: Annotated[str, Form(max_length=MAX_FIELD)],
    client_id: Annotated[str, Form(max_length=MAX_FIELD)],
    client_secret: Annotated[str, Form(max_length=MAX_FIELD)] = "",
) -> dict[str, object] | JSONResponse:
    """OAuth2 errors keep OAuth's own shape (`{"error", "error_description"}`, RFC 6749
    section 5.2), which token clients such as the Enmeshed runtime's parse."""
    try:
        return await _token(
            state,
            client_address(request),
            grant_type,
            username,
            password,
            client_id,
            client_secret,
        )
    except ApiError as exc:
        body = {"error": exc.code, "error_description": exc.message}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _token(
    state: ApiState,
    client: str,
    grant_type: str,
    username: str,
    password: str,
    client_id: str,
    client_secret: str,
) -> dict[str, object]:
    if grant_type != "password":
        raise ApiError(400, "unsupported_grant_type", "only the password grant is supported")
    check_client(state.settings, client_id, client_secret)
    limits = state.limits
    # Before the Argon2 work, on every replica (api/ratelimit.py).
    checked = ((limits.login_rule, username), (PER_ADDRESS, client))
    try:
        limits.check(TOO_MANY_FAILED_LOGINS, *checked)
    except ApiError:
        metrics.LOGINS.labels("locked").inc()
        raise
    row = await state.reads.identities.login(username)
    stored = row.password_hash if row is not None else _decoy_hash()
    good = await state.verify_password(stored, password)
    # The same answer for an unknown user and a wrong password: no username probing.
    if row is None or not good:
        await limits.failed(*checked)
        metrics.LOGINS.labels("failed").inc()
        raise ApiError(400, INVALID_GRANT, "the username or password is wrong")
    await limits.succeeded(limits.login_rule, username)
    metrics.LOGINS.labels("ok").inc()
    access, expires_in = state.tokens.issue(row.address, row.device_id, datetime.now(UTC))
    return {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
