"""Cassandra read models of identities and devices, and the projection that writes them.

Every write carries `USING TIMESTAMP <aggregate version>`. The version is a logical clock
per aggregate, so Cassandra's last-write-wins makes projection idempotent: an event
delivered again after a crash writes the same cells at the same timestamp, and an old
event can never overwrite or resurrect what a newer one wrote or deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from backbone import idempotency
from backbone.settings import cassandra_replication
from store.envelopes import Opened
from store.topics import ProvisioningError
from streams import deletion_readmodels as deletion
from streams import mailbox_sequencer as sequencer
from streams import message_readmodels as messages
from streams import sharing_readmodels as sharing
from streams import sync_readmodels as sync
from streams.writes import Write, remaining_ttl, write_all

SCHEMA = [
    # Wrapped (master-key-sealed) data keys, the same values as the workers' `data-keys`
    # table: a worker that has not yet received a key through faust's global table reads
    # it here (streams/app.py `load_data_key`).
    """CREATE TABLE IF NOT EXISTS data_keys (key_id text PRIMARY KEY, wrapped text)""",
    """CREATE TABLE IF NOT EXISTS identities (
        address text PRIMARY KEY,
        public_key blob,
        client_id text,
        identity_version int,
        created_at timestamp)""",
    """CREATE TABLE IF NOT EXISTS devices (
        address text,
        id text,
        username text,
        created_at timestamp,
        created_by_device text,
        deleted_at timestamp,
        PRIMARY KEY (address, id))""",
    """CREATE TABLE IF NOT EXISTS devices_by_username (
        username text PRIMARY KEY,
        address text,
        device_id text,
        password_hash text)""",
    # The body fingerprint each Idempotency-Key was first accepted with (api/idempotency.py),
    # recorded from the command's reply; rows expire after backbone.idempotency.WINDOW_S.
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        key_id text PRIMARY KEY,
        fingerprint text,
        status int)""",
    *sharing.SCHEMA,
    *messages.SCHEMA,
    *sequencer.SCHEMA,
    *sync.SCHEMA,
    *deletion.SCHEMA,  # issue 22: identity deletion
]


def create_schema(session: Session, keyspace: str, replication: str = "1") -> None:
    """The keyspace (`replication` as BACKBONE_CASSANDRA_REPLICATION) and every table."""
    create_keyspace(session, keyspace, replication)
    for statement in SCHEMA:
        session.execute(statement)


def create_keyspace(session: Session, keyspace: str, replication: str) -> None:
    """Creates (if missing) and selects the keyspace. Refuses, naming the setting, a
    replication the cluster's nodes cannot hold: Cassandra itself would accept it and then
    fail every write at the chosen consistency."""
    factors = cassandra_replication(replication)
    check_replication(session, factors)
    if "" in factors:
        strategy = f"'class': 'SimpleStrategy', 'replication_factor': {factors['']}"
    else:
        per_dc = ", ".join(f"'{dc}': {n}" for dc, n in sorted(factors.items()))
        strategy = f"'class': 'NetworkTopologyStrategy', {per_dc}"
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{{strategy}}}")
    session.set_keyspace(keyspace)


def check_replication(session: Session, factors: dict[str, int]) -> None:
    nodes: dict[str, int] = {}
    for table in ("system.local", "system.peers"):
        for row in session.execute(f"SELECT data_center FROM {table}"):  # noqa: S608
            nodes[row.data_center] = nodes.get(row.data_center, 0) + 1
    for dc, wanted in factors.items():
        have = sum(nodes.values()) if dc == "" else nodes.get(dc, 0)
        if wanted > have:
            where = "the cluster" if dc == "" else f"datacenter {dc!r}"
            raise ProvisioningError(
                f"BACKBONE_CASSANDRA_REPLICATION asks for {wanted} replicas in {where}, which "
                f"has {have} node(s) (datacenters: {', '.join(sorted(nodes)) or 'none'})"
            )


class Projection:
    """The read models' writes for an event (`writes`, no I/O), and `apply` that sends
    them. The workers and the replay run the same `writes`; only how the writes go out
    differs (streams/writes.py)."""

    def __init__(self, session: Session, retention_s: int = 365 * 24 * 3600) -> None:
        self.session = session
        self._identity = session.prepare(
            "INSERT INTO identities (address, public_key, client_id, identity_version, created_at)"
            " VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._device = session.prepare(
            "INSERT INTO devices (address, id, username, created_at, created_by_device)"
            " VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._login = session.prepare(
            "INSERT INTO devices_by_username (username, address, device_id, password_hash)"
            " VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
        )
        self._device_deleted = session.prepare(
            "UPDATE devices USING TIMESTAMP ? SET deleted_at = ? WHERE address = ? AND id = ?"
        )
        self._login_deleted = session.prepare(
            "DELETE FROM devices_by_username USING TIMESTAMP ? WHERE username = ?"
        )
        self._password = session.prepare(
            "UPDATE devices_by_username USING TIMESTAMP ? SET password_hash = ? WHERE username = ?"
        )
        self._idempotency_key = session.prepare(
            "INSERT INTO idempotency_keys (key_id, fingerprint, status) VALUES (?, ?, ?)"
            " USING TTL ?"
        )
        self._messages = messages.MessageProjection(session, retention_s)
        self._others = {
            **sharing.SharingProjection(session).handlers(),
            **sync.SyncProjection(session).handlers(),
            **deletion.DeletionProjection(session).handlers(),
        }

    def reply_writes(self, reply: Opened, now: datetime | None = None) -> list[Write]:
        """The body an accepted keyed command carried (its correlation id says), kept for
        the idempotency window counted from the reply's time."""
        keyed = idempotency.split(reply.body["correlation_id"])
        if keyed is None or not reply.body["ok"]:
            return []
        ttl = remaining_ttl(
            idempotency.WINDOW_S, reply.envelope["occurred_at"], now or datetime.now(UTC)
        )
        if ttl == 0:
            return []  # its window is over, as the live row's is
        key_id, fingerprint = keyed
        return [(self._idempotency_key, (key_id, fingerprint, reply.body["status"], ttl))]

    def writes(self, event: Opened, now: datetime | None = None) -> list[Write] | None:
        """An event's writes; None when the event is not one this projection handles."""
        b: dict[str, Any] = event.body
        ts = int(event.envelope["aggregate_version"])
        name = event.name
        if name == "IdentityCreated":
            values = (
                b["address"],
                b["public_key"],
                b["client_id"],
                b["identity_version"],
                b["created_at"],
                ts,
            )
            return [(self._identity, values)]
        if name == "DeviceRegistered":
            device = (
                b["address"],
                b["device_id"],
                b["username"],
                b["created_at"],
                b["created_by_device"],
                ts,
            )
            login = (b["username"], b["address"], b["device_id"], b["password_hash"], ts)
            return [(self._device, device), (self._login, login)]
        if name == "DevicePasswordChanged":
            return [(self._password, (ts, b["password_hash"], b["username"]))]
        if name == "DeviceDeleted":
            deleted = (ts, b["deleted_at"], b["address"], b["device_id"])
            return [(self._device_deleted, deleted), (self._login_deleted, (ts, b["username"]))]
        if name in self._others:
            return self._others[name](b, ts)
        return self._messages.writes(
            name, b, ts, event.envelope["occurred_at"], now or datetime.now(UTC)
        )

    async def record_reply(self, reply: Opened) -> None:
        await write_all(self.session, self.reply_writes(reply))

    async def apply(self, event: Opened) -> bool:
        """Write one event (its writes at once); False when the event is not one this
        projection handles."""
        writes = self.writes(event)
        if writes is None:
            return False
        await write_all(self.session, writes)
        return True
