"""The API's routers without Kafka or Cassandra: a fake command bus and an in-memory read
store behind the real app, its real authentication (bearer tokens it signs, devices it
looks up) and its real error handling.

The bus records every command and answers it as a decider would: accepted (then the test's
`on` handler writes what the projection would), or refused with a status and a code. The
read store holds records as the projections write them (store/readmodels/); a read model
a test did not fake fails the test if a route queries it, instead of reaching Cassandra.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cassandra.cluster import Session
from fastapi.testclient import TestClient

from api.app import create_app
from api.bus import CommandBus, Outcome
from api.deps import get_state
from api.errors import ApiError
from api.idempotency import Idempotent
from api.state import ApiState
from backbone.replay.pointer import ActiveKeyspace
from backbone.security.addresses import address_from_public_key
from backbone.settings import BackboneSettings
from store.readmodels import ReadStore
from store.readmodels.base import Queries
from store.readmodels.deletion import DeletionProcess, DeletionReads, PeerDeletion
from store.readmodels.identities import Device, Identity, IdentityReads, Login
from store.readmodels.mailbox import Cursor, MailboxEntry, MailboxReads
from store.readmodels.relationships import (
    AuditEntry,
    PeerLink,
    Relationship,
    RelationshipReads,
)
from store.readmodels.sharing import Shared, SharedObjects, Template, Token

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def no_cassandra() -> Session:
    raise AssertionError("a route read a read model the test did not fake")


@dataclass(frozen=True)
class Sent:
    topic: str
    name: str
    body: dict[str, Any]


Effect = Callable[[dict[str, Any]], None]


class FakeBus(CommandBus):
    """Commands are recorded; each is refused if the test said so, else accepted and its
    `on` handler (the test's stand-in for the decider and the projection) applied."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._refusals: dict[str, ApiError] = {}
        self._effects: dict[str, Effect] = {}

    def refuse(self, name: str, status: int, code: str) -> None:
        self._refusals[name] = ApiError(status, code, f"{name} refused")

    def on(self, name: str, effect: Effect) -> None:
        self._effects[name] = effect

    def named(self, name: str) -> list[dict[str, Any]]:
        return [s.body for s in self.sent if s.name == name]

    async def send(
        self,
        topic: str,
        aggregate_key: str,
        name: str,
        body: dict[str, Any],
        idempotent: Idempotent | None = None,
    ) -> Outcome:
        self.sent.append(Sent(topic, name, body))
        if name in self._refusals:
            raise self._refusals[name]
        if name in self._effects:
            self._effects[name](body)
        return Outcome(200, None)


class FakeIdentities(IdentityReads):
    def __init__(self) -> None:
        super().__init__(no_cassandra)
        self.identities: dict[str, Identity] = {}
        self.devices: dict[tuple[str, str], Device] = {}
        self.logins: dict[str, Login] = {}

    async def identity(self, address: str) -> Identity | None:
        return self.identities.get(address)

    async def devices_of(self, address: str) -> list[Device]:
        return [d for (a, _), d in sorted(self.devices.items()) if a == address]

    async def device(self, address: str, device_id: str) -> Device | None:
        return self.devices.get((address, device_id))

    async def login(self, username: str) -> Login | None:
        return self.logins.get(username)


class FakeShared(SharedObjects[Shared]):
    def __init__(self) -> None:
        Queries.__init__(self, no_cassandra)  # no table: `get` and `owned_by` are its own
        self.rows: dict[str, Shared] = {}

    async def get(self, object_id: str) -> Shared | None:
        found = self.rows.get(object_id)
        live = found is None or found.expires_at is None or found.expires_at > datetime.now(UTC)
        return found if live else None

    async def owned_by(self, owner: str, ids: set[str] | None = None) -> list[Shared]:
        return [
            r
            for r in self.rows.values()
            if r.owner == owner and (ids is None or r.id in ids) and await self.get(r.id)
        ]


class FakeRelationships(RelationshipReads):
    def __init__(self) -> None:
        super().__init__(no_cassandra)
        self.rows: dict[str, Relationship] = {}
        self.audits: dict[str, list[AuditEntry]] = {}

    def put(self, relationship: Relationship) -> None:
        self.rows[relationship.id] = relationship

    async def get(self, relationship_id: str) -> Relationship | None:
        return self.rows.get(relationship_id)

    async def ids_of(self, address: str) -> list[str]:
        return sorted(r.id for r in self.rows.values() if r.has_party(address))

    async def audit(self, relationship_id: str) -> list[AuditEntry]:
        return self.audits.get(relationship_id, [])

    async def peers_of(self, address: str) -> list[PeerLink]:
        return [
            PeerLink(r.peer_of(address), r.id, r.status)
            for r in self.rows.values()
            if r.has_party(address)
        ]

    async def with_peer(self, address: str, peer: str) -> list[PeerLink]:
        return [link for link in await self.peers_of(address) if link.peer == peer]


class FakeMailbox(MailboxReads):
    def __init__(self) -> None:
        super().__init__(no_cassandra)
        self.entries: dict[str, list[MailboxEntry]] = {}
        self.device_cursors: dict[str, list[Cursor]] = {}

    def deliver(self, address: str, event_type: str, payload: str) -> int:
        """What the mailbox sequencer does: the identity's next index."""
        entries = self.entries.setdefault(address, [])
        entries.append(MailboxEntry(len(entries) + 1, event_type, payload, NOW))
        return len(entries)

    async def after(self, address: str, since: int, limit: int) -> list[MailboxEntry]:
        return [e for e in self.entries.get(address, []) if e.idx > since][:limit]

    async def head(self, address: str) -> int:
        return len(self.entries.get(address, []))

    async def cursors(self, address: str) -> list[Cursor]:
        return self.device_cursors.get(address, [])


class FakeDeletion(DeletionReads):
    def __init__(self) -> None:
        super().__init__(no_cassandra)
        self.processes: dict[str, list[DeletionProcess]] = {}

    async def processes_of(self, address: str) -> list[DeletionProcess]:
        return self.processes.get(address, [])

    async def process(self, address: str, process_id: str) -> DeletionProcess | None:
        return next((p for p in await self.processes_of(address) if p.id == process_id), None)

    async def peer_deletion(self, relationship_id: str, viewer: str) -> PeerDeletion | None:
        return None


@dataclass
class FakeReads:
    identities: FakeIdentities = field(default_factory=FakeIdentities)
    tokens: FakeShared[Token] = field(default_factory=FakeShared[Token])
    templates: FakeShared[Template] = field(default_factory=FakeShared[Template])
    relationships: FakeRelationships = field(default_factory=FakeRelationships)
    deletion: FakeDeletion = field(default_factory=FakeDeletion)
    mailbox: FakeMailbox = field(default_factory=FakeMailbox)

    def store(self) -> ReadStore:
        """The app's read store with these fakes in place; every other read model fails
        the test when queried."""
        return dataclasses.replace(
            ReadStore.over(no_cassandra),
            identities=self.identities,
            tokens=self.tokens,
            templates=self.templates,
            relationships=self.relationships,
            deletion=self.deletion,
            mailbox=self.mailbox,
        )


class _NoKeyspace:
    cluster = None

    @property
    def session(self) -> Session:
        return no_cassandra()


class UnitState(ApiState):
    """The API's process state with the fakes, and passwords checked without Argon2."""

    async def hash_password(self, password: str) -> str:
        return f"hashed:{password}"

    async def verify_password(self, stored: str, password: str) -> bool:
        return stored == f"hashed:{password}"


@dataclass
class Party:
    """An identity with one device, known to the fake read store."""

    address: str
    device_id: str
    username: str
    headers: dict[str, str]


class FakeApi:
    def __init__(self) -> None:
        self.settings = BackboneSettings.from_env()
        self.bus = FakeBus()
        self.reads = FakeReads()
        built = ApiState.build(self.settings, cast(ActiveKeyspace, _NoKeyspace()))
        values = {f.name: getattr(built, f.name) for f in dataclasses.fields(built)}
        self.state = UnitState(**values | {"bus": self.bus, "reads": self.reads.store()})
        app = create_app(self.settings)
        app.dependency_overrides[get_state] = self._state
        self.client = TestClient(app)
        self._parties = 0

    async def _state(self) -> ApiState:
        return self.state

    def party(self) -> Party:
        """A new identity whose device holds a valid bearer token."""
        self._parties += 1
        n = self._parties
        public_key = bytes([n]) * 32
        address = address_from_public_key(public_key, self.settings.address_domain)
        device_id, username = f"DVC{n:017d}", f"USR{n:017d}"
        identities = self.reads.identities
        identities.identities[address] = Identity(address, public_key, "test", 1, NOW)
        identities.devices[address, device_id] = Device(device_id, username, NOW, None, None)
        identities.logins[username] = Login(address, device_id, f"hashed:password{n}")
        token, _ = self.state.tokens.issue(address, device_id, datetime.now(UTC))
        return Party(address, device_id, username, {"Authorization": f"Bearer {token}"})


def later(days: int = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def error_code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def running() -> Iterator[FakeApi]:
    """A test module's fixture: `yield from running()`."""
    api = FakeApi()
    yield api
    api.client.close()
