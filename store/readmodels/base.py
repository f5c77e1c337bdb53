"""What every read model's queries share: the session, asked for at each use, and rows
turned into the read model's own types.

The session is asked for at each query, never kept: `backbone replay switch` may move the
API to another keyspace while it runs (backbone/replay/pointer.py). Statements are
prepared on their first use per session (store/cassandra.py `run_prepared`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from cassandra.cluster import Session

from store.cassandra import run_prepared

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SessionOf = Callable[[], Session]
# A read model's record: a dataclass whose fields are the columns it is read from.
R = TypeVar("R", bound="DataclassInstance")


def columns(record: type[DataclassInstance]) -> str:
    """The columns a record type is read from, in its fields' order: the type says what a
    query selects, so a column the projection adds later changes no answer."""
    return ", ".join(f.name for f in fields(record))


def is_past(moment: datetime | None) -> bool:
    """Whether a stored expiry has passed; Cassandra hands back naive UTC. Rows with a TTL
    outlive it by up to the compaction's delay, so expired rows are checked by time."""
    if moment is None:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= datetime.now(UTC)


class Queries:
    """The base of one read model's queries."""

    def __init__(self, session_of: SessionOf) -> None:
        self._session_of = session_of

    async def _run(self, cql: str, params: Sequence[Any] = ()) -> Any:
        return await run_prepared(self._session_of(), cql, params)

    async def _all(self, record: type[R], cql: str, params: Sequence[Any] = ()) -> list[R]:
        return [record(*row) for row in await self._run(cql, params)]

    async def _one(self, record: type[R], cql: str, params: Sequence[Any] = ()) -> R | None:
        row = (await self._run(cql, params)).one()
        return None if row is None else record(*row)
