"""The active keyspace: which keyspace the API and the workers read and write, switched
without a restart and without failing a request (`backbone replay switch`).

The pointer is one row in a fixed control keyspace, `<configured keyspace>_control`
(`keyspace_pointer`); every API and worker process polls it twice a second
(`ActiveKeyspace.watch`) and says what it did in `keyspace_clients` (a row per process,
refreshed every 2 s with a 10 s TTL, so a process that died drops out). Without a pointer
row (no switch ever made) a process uses the configured keyspace, as before.

A switch from OLD to NEW (NEW rebuilt by `backbone replay`) goes through these phases; the
command (backbone/replay/switch.py) moves to the next only when every live process said
it is there:

    serving OLD   the replay catches NEW up with the log while everything runs
    draining      API processes hold new requests at a gate (they wait, they do not fail)
                  and let the writes already inside finish: those wait for the workers'
                  replies, so the workers go on
    paused        the workers stop before their next Cassandra write (projection, mailbox
                  sequencer, data keys) and finish the one in flight: nothing writes OLD
    (catch-up)    the command replays NEW up to the log's end and copies the rows that are
                  not on the log (data keys, file chunks) that are missing in NEW
    serving NEW   every process opens a session on NEW and goes on: the workers from their
                  own offsets (what they project again is written the same: projection rows
                  carry the aggregate version as their timestamp, the sequencer skips
                  offsets it has written), the API releases the held requests

No request fails, no acknowledged write is missing: a write answered before the gate was
written to OLD and replayed into NEW; a held request runs on NEW after the catch-up. A
request waits for the length of the pause (seconds on this machine: the catch-up is the
workers' lag, not the log). Reads already past the gate end on OLD; a long-lived stream
reads its next page from NEW (the same mailbox indexes). The old session is closed a
grace period after the switch. If a phase is not reached in time the command sets the
pointer back to OLD (serving), and everything goes on there.

Switching back: while paused, the switch writes OLD a resume point (the workers'
committed positions, in OLD's `replay_progress`) and notes OLD in `keyspace_history`
(with `dropped` once `--drop-old` dropped it). A later `switch --back` (or `--keyspace
OLD`) replays into OLD only what was appended since, with the same phases.

Limits: a process that does not answer (hung, not dead: it still holds its heartbeat row)
stops the switch, which then goes back; a data key written by a decider in the instant of
the pause may land in OLD after the copy (the data-keys write is gated, not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from cassandra import InvalidRequest
from cassandra.cluster import Cluster, Session

from store.cassandra import execute

log = logging.getLogger("backbone.keyspace")

POLL_S = 0.5
HEARTBEAT_S = 2.0
HEARTBEAT_TTL_S = 10
# A session a switch left is closed after this: reads that started on it have ended.
OLD_SESSION_GRACE_S = 30.0
POINTER = "read-models"

SERVING = "serving"
DRAINING = "draining"
PAUSED = "paused"
PHASES = (SERVING, DRAINING, PAUSED)


def control_keyspace(configured: str) -> str:
    return f"{configured}_control"


def control_schema(control: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {control}.keyspace_pointer (
            name text PRIMARY KEY, epoch int, active text, target text, phase text,
            changed_at timestamp)""",
        f"""CREATE TABLE IF NOT EXISTS {control}.keyspace_clients (
            client text PRIMARY KEY, role text, epoch int, phase text, on_keyspace text,
            at timestamp)""",
        # The keyspaces a switch left (`name`; the epoch of that switch), for going back.
        f"""CREATE TABLE IF NOT EXISTS {control}.keyspace_history (
            name text PRIMARY KEY, epoch int, left_at timestamp, dropped boolean)""",
    ]


@dataclass(frozen=True)
class Pointer:
    epoch: int
    active: str  # the keyspace reads and writes go to
    target: str  # the keyspace a switch in progress moves to (= active when serving)
    phase: str

    @classmethod
    def initial(cls, configured: str) -> Pointer:
        return cls(0, configured, configured, SERVING)


async def read_pointer(control_session: Session, configured: str) -> Pointer | None:
    """The pointer, or None when no switch was ever made (no control keyspace or row)."""
    try:
        rows = await execute(
            control_session,
            f"SELECT epoch, active, target, phase FROM {control_keyspace(configured)}"  # noqa: S608
            ".keyspace_pointer WHERE name = %s",
            (POINTER,),
        )
    except InvalidRequest:  # the control keyspace or its table does not exist
        return None
    row = rows.one()
    return None if row is None else Pointer(row.epoch, row.active, row.target, row.phase)


@dataclass(frozen=True)
class Left:
    """A keyspace a switch left: resumable unless `dropped`."""

    keyspace: str
    epoch: int
    dropped: bool


async def read_history(control_session: Session, configured: str) -> list[Left]:
    try:
        rows = await execute(
            control_session,
            f"SELECT name, epoch, dropped FROM {control_keyspace(configured)}"  # noqa: S608
            ".keyspace_history",
        )
    except InvalidRequest:  # no switch was ever made
        return []
    return [Left(r.name, r.epoch, bool(r.dropped)) for r in rows]


@dataclass(frozen=True)
class ClientState:
    client: str
    role: str  # "api" or "worker"
    epoch: int
    phase: str
    keyspace: str


class ActiveKeyspace:
    """One process's session on the active keyspace, behind a gate that a switch closes.

    `session` is the session to use now. Work that writes takes `writing()` (it waits while
    the gate is closed and is counted until it ends, so that the process can say when it
    has nothing in flight); work that only reads takes `ready()`. `on_switch` callbacks get
    the new session (to prepare their statements on it)."""

    def __init__(
        self, configured: str, role: str, cluster: Cluster, session: Session, control: Session
    ) -> None:
        self.configured = configured
        self.role = role
        self.cluster = cluster
        self.keyspace = configured
        self._session = session
        self._control = control
        self.client = f"{role}:{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.epoch = 0
        self.phase = SERVING
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writes = 0
        self._on_switch: list[Callable[[Session], None]] = []
        self._pausing = DRAINING if role == "api" else PAUSED

    @classmethod
    async def start(
        cls, configured: str, role: str, cluster: Cluster, session: Session
    ) -> ActiveKeyspace:
        """From the session on the configured keyspace: opens the pointer's keyspace
        instead when a switch moved it."""
        control = await asyncio.to_thread(cluster.connect)
        active = cls(configured, role, cluster, session, control)
        pointer = await read_pointer(control, configured)
        if pointer is not None:
            await active._apply(pointer)
        return active

    @property
    def session(self) -> Session:
        return self._session

    def on_switch(self, callback: Callable[[Session], None]) -> None:
        self._on_switch.append(callback)

    async def ready(self) -> None:
        await self._open.wait()

    def is_open(self) -> bool:
        return self._open.is_set()

    async def begin_write(self) -> Session:
        """Waits while the gate is closed; counted in flight until `end_write`."""
        # Checked again after waking: the gate may have closed between being opened and
        # this task running, and a write let through then would land on the old keyspace.
        while not self._open.is_set():
            await self._open.wait()
        self._writes += 1
        self._idle.clear()
        return self._session

    def end_write(self) -> None:
        self._writes -= 1
        if self._writes == 0:
            self._idle.set()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[Session]:
        session = await self.begin_write()
        try:
            yield session
        finally:
            self.end_write()

    async def watch(self) -> None:
        """Polls the pointer and follows it, until cancelled."""
        last_beat = 0.0
        while True:
            try:
                pointer = await read_pointer(self._control, self.configured)
                if pointer is not None:
                    if pointer.epoch != self.epoch or pointer.phase != self.phase:
                        await self._apply(pointer)
                        last_beat = 0.0
                    if time.monotonic() - last_beat >= HEARTBEAT_S:
                        await self._beat()
                        last_beat = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is down: keep what we have, ask again
                log.warning("reading the keyspace pointer failed", exc_info=True)
            await asyncio.sleep(POLL_S)

    async def _apply(self, pointer: Pointer) -> None:
        if pointer.phase == SERVING:
            if pointer.active != self.keyspace:
                await self._use(pointer.active)
            self._open.set()
        elif pointer.phase == self._pausing or pointer.phase == PAUSED:
            # Closed, and nothing of ours in flight on the old keyspace any more.
            self._open.clear()
            await self._idle.wait()
        # A worker in `draining`: goes on (the API's writes in flight need it).
        self.epoch, self.phase = pointer.epoch, pointer.phase
        log.info(
            "keyspace pointer",
            extra={"keyspace": self.keyspace, "phase": self.phase, "epoch": self.epoch},
        )

    async def _use(self, keyspace: str) -> None:
        new = await asyncio.to_thread(self.cluster.connect, keyspace)
        for callback in self._on_switch:
            callback(new)
        old, self._session, self.keyspace = self._session, new, keyspace
        asyncio.get_running_loop().call_later(OLD_SESSION_GRACE_S, _close_later, old)

    async def _beat(self) -> None:
        await execute(
            self._control,
            f"INSERT INTO {control_keyspace(self.configured)}.keyspace_clients"  # noqa: S608
            " (client, role, epoch, phase, on_keyspace, at) VALUES (%s, %s, %s, %s, %s,"
            f" toTimestamp(now())) USING TTL {HEARTBEAT_TTL_S}",
            (self.client, self.role, self.epoch, self.phase, self.keyspace),
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._control.shutdown)


def _close_later(session: Any) -> None:
    # Shutting a session down blocks: not on the event loop.
    threading.Thread(target=session.shutdown, daemon=True).start()
