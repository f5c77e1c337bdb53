"""Who may read a shared object (a token or a relationship template): its owner; the
identity it is for, when it is for one; anyone holding its id otherwise. A password, when
set, is asked of everyone but the owner."""

from __future__ import annotations

from typing import Any

from api.deps import Caller
from api.errors import ApiError
from api.state import ApiState

NOT_FOUND = "error.platform.recordNotFound"
PASSWORD_CODE = "error.platform.validation.wrongPassword"  # noqa: S105 (an error code)


async def check_readable(
    state: ApiState, row: Any, caller: Caller | None, password: str | None, what: str
) -> None:
    """Raise 404 (not 403: its existence is not disclosed) or 403 for a missing password."""
    who = caller.address if caller else None
    if row is None or (row.for_identity is not None and who not in (row.owner, row.for_identity)):
        raise ApiError(404, NOT_FOUND, f"{what} not found")
    if row.password_hash is None or who == row.owner:
        return
    if password is None or not await state.verify_password(row.password_hash, password):
        raise ApiError(403, PASSWORD_CODE, f"this {what} needs its password")
