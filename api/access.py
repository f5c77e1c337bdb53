"""Who may read a shared object (a token or a relationship template): its owner; the
identity it is for, when it is for one; anyone holding its id otherwise. A password, when
set, is asked of everyone but the owner."""

from __future__ import annotations

from typing import TypeVar

from api.deps import Caller
from api.errors import ApiError
from api.ratelimit import PER_ADDRESS, PER_PROTECTED_OBJECT, TOO_MANY
from api.state import ApiState
from store.readmodels.sharing import SharedObject

S = TypeVar("S", bound=SharedObject)

NOT_FOUND = "error.platform.recordNotFound"
PASSWORD_CODE = "error.platform.validation.wrongPassword"  # noqa: S105 (an error code)


async def check_readable(
    state: ApiState,
    row: S | None,
    caller: Caller | None,
    password: str | None,
    what: str,
    client: str,
) -> S:
    """The object when `caller` may read it; else raise 404 (not 403: its existence is not
    disclosed) or 403 for a missing password; 429 when this object or this client address
    had too many wrong passwords lately, checked before the Argon2 work (api/ratelimit.py)."""
    who = caller.address if caller else None
    if row is None or (row.for_identity is not None and who not in (row.owner, row.for_identity)):
        raise ApiError(404, NOT_FOUND, f"{what} not found")
    if row.password_hash is None or who == row.owner:
        return row
    if password is None:  # no Argon2 work: not counted
        raise ApiError(403, PASSWORD_CODE, f"this {what} needs its password")
    checked = ((PER_PROTECTED_OBJECT, row.id), (PER_ADDRESS, client))
    state.limits.check(TOO_MANY, *checked)
    if not await state.verify_password(row.password_hash, password):
        await state.limits.failed(*checked)
        raise ApiError(403, PASSWORD_CODE, f"this {what} needs its password")
    return row
