"""`backbone replay switch --keyspace NEW`: points the API and the workers at a rebuilt
keyspace without a restart and without a failed request (the phases and their limits are
in backbone/replay/pointer.py; docs/architecture.md, "Switching the keyspace").

The command is the only writer of the pointer. It catches NEW up with the log while
everything runs, moves the pointer through draining and paused (waiting each time for every
live process to say it is there), replays the few records appended meanwhile and copies
what is not on the log, then points everything at NEW. When a phase is not reached in
time, the pointer goes back to the old keyspace (serving) and the command fails.

Switching back (`--back`, or `--keyspace` naming a keyspace a switch left) is the same
protocol, and costs what was appended since: while paused, a switch writes the keyspace it
leaves a resume point, the workers' committed positions (`replay_progress`, where the
replay resumes from; everything before them is in that keyspace, and what is replayed
again is written the same), and notes it in `keyspace_history`. Going back, the replay
resumes there. What is not on the log is made equal to the active keyspace's before the
flip, in either direction: data keys shredded meanwhile are removed, file chunks copied
or removed, and identities deleted meanwhile erased (their own old rows are not undone by
a replay of the tail, as their records no longer open). A keyspace dropped by
`--drop-old` cannot be resumed: the command says so and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cassandra import InvalidRequest
from cassandra.cluster import Cluster, Session

from backbone.audit.logread import partitions_of
from backbone.connections import kafka_client_kwargs
from backbone.datakeys import wrapped_data_keys
from backbone.deletion_policy import sha256_hex
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
    read_history,
    read_pointer,
)
from backbone.replay.rebuild import PROGRESS_SCHEMA, Replayer, ReplayOptions
from backbone.settings import BackboneSettings
from store.cassandra import connect, execute
from store.topics import TopicNames
from streams.deletion_erase import erase_identity
from streams.readmodels import create_keyspace

log = logging.getLogger("backbone.replay.switch")

# The online catch-up stops when a round replayed fewer records than this: what is left
# is replayed while the writers are paused, and requests wait for it.
CAUGHT_UP_RECORDS = 500
MAX_ONLINE_ROUNDS = 5


class SwitchFailed(Exception):
    """A phase was not reached in time; the pointer is back on the old keyspace."""


class SwitchRefused(Exception):
    """Nothing was changed: the switch asked for cannot be made (a dropped keyspace, no
    keyspace to go back to)."""


@dataclass
class SwitchReport:
    old: str
    new: str
    online_records: int = 0
    paused_records: int = 0
    paused_s: float = 0.0  # how long requests were held
    clients: int = 0
    dropped_old: bool = False
    resumed: bool = False  # NEW had saved positions: only what came after them was replayed
    erased_identities: int = 0  # deleted while NEW was not served: erased in NEW
    data_keys_removed: int = 0  # shredded while NEW was not served: removed from NEW
    file_chunks_removed: int = 0


class Switch:
    def __init__(
        self,
        settings: BackboneSettings,
        new: str | None,
        timeout_s: float = 60.0,
        say: Callable[[str], None] = print,
    ) -> None:
        """`new`: None to go back to the keyspace the last switch left."""
        self.settings = settings
        self.new = new or ""
        self.timeout_s = timeout_s
        self.say = say
        self.configured = settings.cluster.keyspace
        self.control = control_keyspace(self.configured)
        self._cluster: Cluster
        self._session: Session
        self._sessions: dict[str, Session] = {}

    async def run(self, drop_old: bool = False) -> SwitchReport:
        cluster, self._session = await asyncio.to_thread(connect, self.settings.cluster, None)
        self._cluster = cluster
        try:
            return await self._run(drop_old)
        finally:
            await asyncio.to_thread(cluster.shutdown)

    async def _on(self, keyspace: str) -> Session:
        """A session on `keyspace` (the code shared with the workers names tables bare)."""
        if keyspace not in self._sessions:
            self._sessions[keyspace] = await asyncio.to_thread(self._cluster.connect, keyspace)
        return self._sessions[keyspace]

    async def _run(self, drop_old: bool) -> SwitchReport:
        await self._control_schema()
        pointer = await read_pointer(self._session, self.configured)
        first_switch = pointer is None
        if pointer is None:
            pointer = Pointer.initial(self.configured)
        if not self.new:
            self.new = await self._last_left(pointer.active)
        await self._refuse_dropped()
        if first_switch:
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
        report.resumed = await self._has_resume_point()
        if report.resumed:
            self.say(f"{self.new} is replayed from its saved positions, not from the beginning")
        # Identities deleted while NEW was not served: their rows in NEW are erased once
        # the tail is replayed (their own records do not open any more).
        erased_before = await self._deleted(self.new)
        addresses = await self._addresses(self.new)

        for round_ in range(MAX_ONLINE_ROUNDS):
            done = await self._replay(old)
            report.online_records += done
            self.say(f"catch-up {round_ + 1}: {done} records replayed into {self.new}")
            if done < CAUGHT_UP_RECORDS:
                break
        addresses |= await self._addresses(self.new)
        report.erased_identities += await self._erase_deleted(old, erased_before, addresses)

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
            report.erased_identities += await self._erase_deleted(old, erased_before, addresses)
            report.data_keys_removed = await self._remove_shredded_keys(old)
            report.file_chunks_removed = await self._mirror_file_chunks(old)
            if not drop_old:
                await self._save_resume_point(old)
            await self._note_left(old, epoch + 1, dropped=False)
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
            await self._note_left(old, epoch, dropped=True)
            self.say(f"dropped {old}")
        return report

    async def _last_left(self, active: str) -> str:
        """`--back`: the keyspace the latest switch left."""
        left = [
            h for h in await read_history(self._session, self.configured) if h.keyspace != active
        ]
        if not left:
            raise SwitchRefused("no switch has left a keyspace to go back to")
        return max(left, key=lambda h: h.epoch).keyspace

    async def _refuse_dropped(self) -> None:
        history = {h.keyspace: h for h in await read_history(self._session, self.configured)}
        left = history.get(self.new)
        if left is None or not left.dropped or await self._exists(self.new):
            return
        raise SwitchRefused(
            f"{self.new} was dropped by the switch of epoch {left.epoch} (--drop-old): there "
            f"is nothing to resume; rebuild it with `backbone replay --keyspace {self.new}`, "
            "then switch"
        )

    async def _exists(self, keyspace: str) -> bool:
        rows = await execute(
            self._session,
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (keyspace,),
        )
        return rows.one() is not None

    async def _has_resume_point(self) -> bool:
        try:
            rows = await execute(
                self._session,
                f"SELECT next_offset FROM {self.new}.replay_progress LIMIT 1",  # noqa: S608
            )
        except InvalidRequest:  # no such keyspace or table: a fresh replay
            return False
        return rows.one() is not None

    async def _note_left(self, keyspace: str, epoch: int, dropped: bool) -> None:
        await execute(
            self._session,
            f"INSERT INTO {self.control}.keyspace_history (name, epoch, left_at, dropped)"  # noqa: S608
            " VALUES (%s, %s, toTimestamp(now()), %s)",
            (keyspace, epoch, dropped),
        )

    async def _save_resume_point(self, old: str) -> None:
        """While nothing writes OLD: where a replay into it resumes. The workers' committed
        offsets (the projector's group on `events`, the sequencer's on `mailbox-entries`)
        are at or behind what they wrote into OLD; a position OLD already had from a replay
        into it is kept when it is further on."""
        names = TopicNames(self.settings.cluster.topic_prefix)
        bootstrap = self.settings.cluster.kafka_bootstrap
        groups = {
            names.events: self.settings.app_id,
            names.mailbox_entries: f"{self.settings.app_id}-mailbox-sequencer",
        }
        session = await self._on(old)
        await execute(session, PROGRESS_SCHEMA)
        saved = {
            (r.topic, r.partition): r.next_offset
            for r in await execute(
                session, "SELECT topic, partition, next_offset FROM replay_progress"
            )
        }
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(bootstrap))
        consumer = AIOKafkaConsumer(**kafka_client_kwargs(bootstrap), enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        await asyncio.sleep(0)  # see backbone/audit/logread.py read_partition
        try:
            for topic, group in groups.items():
                tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                starts = await consumer.beginning_offsets(tps)
                for tp in tps:
                    at = committed[tp].offset if tp in committed else -1
                    position = max(at, starts[tp], saved.get((topic, tp.partition), -1))
                    await execute(
                        session,
                        "INSERT INTO replay_progress (topic, partition, next_offset, end_offset,"
                        " updated_at) VALUES (%s, %s, %s, %s, toTimestamp(now()))",
                        (topic, tp.partition, position, position),
                    )
        finally:
            await consumer.stop()
            await admin.close()

    async def _deleted(self, keyspace: str) -> set[str]:
        try:
            rows = await execute(
                self._session,
                f"SELECT address_hash FROM {keyspace}.deleted_identities",  # noqa: S608
            )
        except InvalidRequest:  # not built yet
            return set()
        return {r.address_hash for r in rows}

    async def _addresses(self, keyspace: str) -> dict[str, str]:
        """address hash -> address of the identities `keyspace` holds."""
        try:
            rows = await execute(self._session, f"SELECT address FROM {keyspace}.identities")  # noqa: S608
        except InvalidRequest:
            return {}
        return {sha256_hex(r.address): r.address for r in rows}

    async def _erase_deleted(
        self, old: str, erased_before: set[str], addresses: dict[str, str]
    ) -> int:
        """Erases from NEW the identities OLD lists as deleted that NEW had not erased when
        the command started (and adds them to `erased_before`); returns how many."""
        due = (await self._deleted(old)) - erased_before
        session = await self._on(self.new)
        erased = 0
        for address_hash in sorted(due):
            address = addresses.get(address_hash)
            if address is not None:  # else NEW never had its rows
                await erase_identity(session, address, set(), set())
                erased += 1
            erased_before.add(address_hash)
        return erased

    async def _remove_shredded_keys(self, old: str) -> int:
        """Data keys are not on the log: NEW keeps only those that still exist (the
        workers' changelog and OLD's table), so a key shredded meanwhile is gone from it."""
        existing = await wrapped_data_keys(self.settings, await self._on(old))
        session = await self._on(self.new)
        held = {r.key_id for r in await execute(session, "SELECT key_id FROM data_keys")}
        gone = sorted(held - existing.keys())
        for key_id in gone:
            await execute(session, "DELETE FROM data_keys WHERE key_id = %s", (key_id,))
        return len(gone)

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

    async def _mirror_file_chunks(self, old: str) -> int:
        """File bytes are not on the log: the chunks uploaded since the replay copied them
        (the API writes them itself, before the file's event) are copied, those OLD no
        longer has (a deleted identity's files) removed; returns how many were removed."""
        have = {
            (r.file_id, r.chunk)
            for r in await execute(
                self._session,
                f"SELECT file_id, chunk FROM {self.new}.file_chunks",  # noqa: S608
            )
        }
        live = {
            (r.file_id, r.chunk)
            for r in await execute(
                self._session,
                f"SELECT file_id, chunk FROM {old}.file_chunks",  # noqa: S608
            )
        }
        missing = sorted(live - have)
        removed = sorted(have - live)
        for file_id, chunk in removed:
            await execute(
                self._session,
                f"DELETE FROM {self.new}.file_chunks WHERE file_id = %s AND chunk = %s",  # noqa: S608
                (file_id, chunk),
            )
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
        return len(removed)
