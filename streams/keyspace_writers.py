"""The workers' writers on the active keyspace, which `backbone replay switch` may change
while they run (backbone/replay/pointer.py): each write waits while a switch holds the
writers and is counted in flight, and the projection and the sequencer are made again on
the new keyspace's session (their prepared statements name the keyspace they were
prepared in)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cassandra.cluster import Session

from backbone.replay.pointer import ActiveKeyspace
from streams.mailbox_sequencer import Announce, Entry, Sequenced, Sequencer
from streams.readmodels import Projection


class ActiveProjection:
    def __init__(self, keyspace: ActiveKeyspace, retention_s: int) -> None:
        self._keyspace = keyspace
        self._retention_s = retention_s
        self._current: Projection | None = None

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Projection]:
        """The projection on the active keyspace, for one event's writes."""
        async with self._keyspace.writing() as session:
            if self._current is None or self._current.session is not session:
                self._current = await asyncio.to_thread(Projection, session, self._retention_s)
            yield self._current


class ActiveSequencer(Sequencer):
    """A `Sequencer` for SequencerConsumer whose every batch goes to the active keyspace."""

    def __init__(self, keyspace: ActiveKeyspace, retention_s: int) -> None:
        # Not Sequencer.__init__: the statements are prepared per keyspace, in `_on`.
        self._keyspace = keyspace
        self.retention_s = retention_s
        self._current: Sequencer | None = None

    def forget(self) -> None:
        if self._current is not None:
            self._current.forget()

    async def _on(self, session: Session) -> Sequencer:
        if self._current is None or self._current.session is not session:
            self._current = await asyncio.to_thread(Sequencer, session, self.retention_s)
        return self._current

    async def sequence(
        self, entries: list[Entry], announce: Announce | None = None
    ) -> list[Sequenced]:
        async with self._keyspace.writing() as session:
            return await (await self._on(session)).sequence(entries, announce)
