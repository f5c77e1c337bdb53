"""`backbone replay switch --keyspace NEW`: points the API and the workers at a rebuilt
keyspace without a restart and without a failed request (the phases and their limits are
in backbone/replay/pointer.py; docs/architecture.md, "Switching the keyspace").

The command is the only writer of the pointer. It catches NEW up with the log while
everything runs, moves the pointer through draining and paused (waiting each time for every
live process to say it is there), replays the few records appended meanwhile and copies
what is not on the log, then points everything at NEW. When a phase is not reached in
time, the pointer goes back to the old keyspace (serving) and the command fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cassandra.cluster import Session

from backbone.replay.pointer import (
    DRAINING,
    HEARTBEAT_S,
    PAUSED,
    POINTER,
    POLL_S,
    SERVING,
    ClientState,
    Pointer,
    control_keyspace,
    control_schema,
    read_pointer,
)
from backbone.replay.rebuild import Replayer, ReplayOptions
from backbone.settings import BackboneSettings
from store.cassandra import connect, execute
from streams.readmodels import create_keyspace

log = logging.getLogger("backbone.replay.switch")

# The online catch-up stops when a round replayed fewer records than this: what is left
# is replayed while the writers are paused, and requests wait for it.
CAUGHT_UP_RECORDS = 500
MAX_ONLINE_ROUNDS = 5


class SwitchFailed(Exception):
    """A phase was not reached in time; the pointer is back on the old keyspace."""


@dataclass
class SwitchReport:
    old: str
    new: str
    online_records: int = 0
    paused_records: int = 0
    paused_s: float = 0.0  # how long requests were held
    clients: int = 0
    dropped_old: bool = False


class Switch:
    def __init__(
        self,
        settings: BackboneSettings,
        new: str,
        timeout_s: float = 60.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.new = new
        self.timeout_s = timeout_s
        self.say = say
        self.configured = settings.cluster.keyspace
        self.control = control_keyspace(self.configured)
        self._session: Session

    async def run(self, drop_old: bool = False) -> SwitchReport:
        cluster, self._session = await asyncio.to_thread(connect, self.settings.cluster, None)
        try:
            return await self._run(drop_old)
        finally:
            await asyncio.to_thread(cluster.shutdown)

    async def _run(self, drop_old: bool) -> SwitchReport:
        await self._control_schema()
        pointer = await read_pointer(self._session, self.configured)
        if pointer is None:
            pointer = Pointer.initial(self.configured)
            await self._set(pointer)
            # Every process starts saying where it is once the pointer exists.
            await asyncio.sleep(HEARTBEAT_S + 2 * POLL_S)
        if pointer.phase != SERVING:
            raise SwitchFailed(
                f"a switch is already under way ({pointer.phase}); it goes "
                "back on its own if its command died"
            )
        old = pointer.active
        if old == self.new:
            raise SwitchFailed(f"{self.new} is already the active keyspace")
        report = SwitchReport(old, self.new)

        for round_ in range(MAX_ONLINE_ROUNDS):
            done = await self._replay(old)
            report.online_records += done
            self.say(f"catch-up {round_ + 1}: {done} records replayed into {self.new}")
            if done < CAUGHT_UP_RECORDS:
                break

        epoch = pointer.epoch
        held = time.monotonic()
        try:
            epoch += 1
            await self._set(Pointer(epoch, old, self.new, DRAINING))
            apis = await self._wait_for(epoch, DRAINING, old, roles=("api",))
            self.say(f"draining: {apis} API processes hold new requests")
            epoch += 1
            await self._set(Pointer(epoch, old, self.new, PAUSED))
            report.clients = await self._wait_for(epoch, PAUSED, old)
            self.say(f"paused: {report.clients} processes, nothing writes {old}")
            report.paused_records = await self._replay(old)
            await self._copy_missing_file_chunks(old)
        except BaseException:
            await self._set(Pointer(epoch + 1, old, old, SERVING))
            self.say(f"switch abandoned: back on {old}")
            raise
        epoch += 1
        await self._set(Pointer(epoch, self.new, self.new, SERVING))
        await self._wait_for(epoch, SERVING, self.new)
        report.paused_s = time.monotonic() - held
        self.say(
            f"serving from {self.new} (requests held {report.paused_s:.1f} s, "
            f"{report.paused_records} records replayed meanwhile)"
        )
        if drop_old:
            await asyncio.sleep(POLL_S * 4)  # reads that started on the old keyspace end
            # Schema changes wait for every node's agreement: seconds on a busy node.
            await asyncio.to_thread(
                self._session.execute, f"DROP KEYSPACE IF EXISTS {old}", timeout=120
            )
            report.dropped_old = True
            self.say(f"dropped {old}")
        return report

    async def _control_schema(self) -> None:
        await asyncio.to_thread(
            create_keyspace,
            self._session,
            self.control,
            self.settings.cluster.cassandra_replication,
        )
        for statement in control_schema(self.control):
            await execute(self._session, statement)

    async def _set(self, pointer: Pointer) -> None:
        await execute(
            self._session,
            f"INSERT INTO {self.control}.keyspace_pointer (name, epoch, active, target, phase,"  # noqa: S608
            " changed_at) VALUES (%s, %s, %s, %s, %s, toTimestamp(now()))",
            (POINTER, pointer.epoch, pointer.active, pointer.target, pointer.phase),
        )

    async def clients(self) -> list[ClientState]:
        rows = await execute(
            self._session,
            f"SELECT client, role, epoch, phase, on_keyspace FROM {self.control}.keyspace_clients",  # noqa: S608
        )
        return [ClientState(r.client, r.role, r.epoch, r.phase, r.on_keyspace) for r in rows]

    async def _wait_for(
        self, epoch: int, phase: str, keyspace: str, roles: tuple[str, ...] = ("api", "worker")
    ) -> int:
        """Until every live process of `roles` reports `epoch`; returns how many there are."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            live = [c for c in await self.clients() if c.role in roles]
            behind = [c for c in live if c.epoch < epoch or c.keyspace != keyspace]
            if not behind:
                return len(live)
            if time.monotonic() > deadline:
                names = ", ".join(c.client for c in behind)
                raise SwitchFailed(f"not {phase} after {self.timeout_s:.0f} s: {names}")
            await asyncio.sleep(POLL_S / 2)

    async def _replay(self, old: str) -> int:
        options = ReplayOptions(target=self.new, source=old, copy_files=False)
        replayer = Replayer(self.settings, options)
        try:
            progress = await replayer.run()
        finally:
            await replayer.close()
        return progress.done

    async def _copy_missing_file_chunks(self, old: str) -> None:
        """File bytes are not on the log: the chunks uploaded since the replay copied them
        (the API writes them itself, before the file's event)."""
        have = {
            (r.file_id, r.chunk)
            for r in await execute(
                self._session,
                f"SELECT file_id, chunk FROM {self.new}.file_chunks",  # noqa: S608
            )
        }
        missing = [
            (r.file_id, r.chunk)
            for r in await execute(
                self._session,
                f"SELECT file_id, chunk FROM {old}.file_chunks",  # noqa: S608
            )
            if (r.file_id, r.chunk) not in have
        ]
        select = await asyncio.to_thread(
            self._session.prepare,
            f"SELECT data, TTL(data) AS ttl FROM {old}.file_chunks WHERE file_id = ? AND chunk = ?",  # noqa: S608
        )
        insert = await asyncio.to_thread(
            self._session.prepare,
            f"INSERT INTO {self.new}.file_chunks (file_id, chunk, data) VALUES (?, ?, ?)"  # noqa: S608
            " USING TTL ?",
        )
        for file_id, chunk in missing:
            row = (await execute(self._session, select, (file_id, chunk))).one()
            if row is not None:
                await execute(self._session, insert, (file_id, chunk, row.data, row.ttl or 0))
