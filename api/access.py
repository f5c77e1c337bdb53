"""Who may read a shared object (a token or a relationship template): its owner; the
identity it is for, when it is for one; anyone holding its id otherwise. A password, when
set, is asked of everyone but the owner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.content import expired
from api.deps import Caller
from api.errors import ApiError
from api.paging import Page
from api.ratelimit import PER_ADDRESS, PER_PROTECTED_OBJECT, TOO_MANY
from api.state import ApiState
from store.cassandra import run_prepared

NOT_FOUND = "error.platform.recordNotFound"
PASSWORD_CODE = "error.platform.validation.wrongPassword"  # noqa: S105 (an error code)


async def check_readable(
    state: ApiState,
    row: Any,
    caller: Caller | None,
    password: str | None,
    what: str,
    client: str,
) -> None:
    """Raise 404 (not 403: its existence is not disclosed) or 403 for a missing password;
    429 when this object or this client address had too many wrong passwords lately, checked
    before the Argon2 work (api/ratelimit.py)."""
    who = caller.address if caller else None
    if row is None or (row.for_identity is not None and who not in (row.owner, row.for_identity)):
        raise ApiError(404, NOT_FOUND, f"{what} not found")
    if row.password_hash is None or who == row.owner:
        return
    if password is None:  # no Argon2 work: not counted
        raise ApiError(403, PASSWORD_CODE, f"this {what} needs its password")
    checked = ((PER_PROTECTED_OBJECT, row.id), (PER_ADDRESS, client))
    state.limits.check(TOO_MANY, *checked)
    if not await state.verify_password(row.password_hash, password):
        await state.limits.failed(*checked)
        raise ApiError(403, PASSWORD_CODE, f"this {what} needs its password")


@dataclass(frozen=True)
class SharedKind:
    """Where one kind of shared object lives in Cassandra: its table and its by-owner index.
    Both names are constants of the read models, never request input."""

    table: str
    by_owner: str

    async def row(self, state: ApiState, object_id: str) -> Any:
        """The object, or None when it does not exist or has expired (TTLs are coarse)."""
        query = f"SELECT * FROM {self.table} WHERE id = ?"  # noqa: S608 (constant names)
        row = (await run_prepared(state.session, query, (object_id,))).one()
        return None if row is None or expired(row.expires_at) else row

    async def page_of_own(
        self,
        state: ApiState,
        owner: str,
        ids: list[str] | None,
        page: Page,
        dto: Callable[[Any], dict[str, Any]],
    ) -> dict[str, Any]:
        query = f"SELECT id FROM {self.by_owner} WHERE owner = ?"  # noqa: S608 (constant)
        wanted = set(ids) if ids else None
        found = []
        for ref in await run_prepared(state.session, query, (owner,)):
            if wanted is None or ref.id in wanted:
                row = await self.row(state, ref.id)
                if row is not None:
                    found.append(dto(row))
        return page.envelope(found)
