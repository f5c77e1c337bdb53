"""The worker process's one Cassandra connection, opened on first use.

Every actor shares it: each agent runs one actor per assigned partition
(`isolated_partitions`), so that partitions are processed concurrently while each keeps
its order, and they must not open a session each.
"""

from __future__ import annotations

import asyncio

from cassandra.cluster import Session

from backbone.replay.pointer import ActiveKeyspace
from backbone.settings import ClusterSettings
from store.cassandra import connect


class WorkerKeyspace:
    def __init__(self, cluster: ClusterSettings) -> None:
        self._cluster = cluster
        self._lock = asyncio.Lock()
        self._active: ActiveKeyspace | None = None
        self._watch: asyncio.Future[None] | None = None  # held, so it is not collected

    async def active(self) -> ActiveKeyspace:
        # Keyspace switch-over (backbone/replay/pointer.py): the session follows the pointer,
        # and every Cassandra write waits while a switch holds the writers.
        async with self._lock:
            if self._active is None:
                cluster, session = await asyncio.to_thread(
                    connect, self._cluster, self._cluster.keyspace
                )
                keyspace = await ActiveKeyspace.start(
                    self._cluster.keyspace, "worker", cluster, session
                )
                self._watch = asyncio.ensure_future(keyspace.watch())
                self._active = keyspace
            return self._active

    async def session(self) -> Session:
        """The session on the active keyspace, once a switch-over in progress let go."""
        keyspace = await self.active()
        await keyspace.ready()
        return keyspace.session
