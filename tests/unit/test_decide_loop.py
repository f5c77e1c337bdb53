"""The decide loop (streams/deciding.py) without Kafka: what a command's sender and the
projection rely on, whatever the aggregate.

The topics are recorders of what would be sent and the table a dict; the codec and the
decider are the real ones (the token decider, the simplest that creates something). The
loop answers accepted or refused-with-a-code; the HTTP status is the API's choice
(tests/unit/test_error_status.py).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backbone import idempotency
from domain import token_decider
from store.envelopes import EnvelopeCodec, Opened
from streams import deciding
from streams.deciding import REMEMBERED_COMMANDS, Decider, Runtime

OWNER = "did:e:localhost:dids:0123456789abcdef012345"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class RecordingTopic:
    """Collects what the loop sends, in order, across topics (one shared log)."""

    def __init__(self, name: str, log: list[tuple[str, bytes, bytes]]) -> None:
        self.name = name
        self.log = log

    async def send(self, *, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.log.append((self.name, key, value))
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked.set_result(None)  # as faust's once the broker acknowledged
        return acked


class World:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.codec = EnvelopeCodec(base64.b64encode(secrets.token_bytes(32)).decode(), self._key)
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.table: dict[str, Any] = {}
        self.runtime = Runtime(
            self.codec,
            RecordingTopic("events", self.sent),  # type: ignore[arg-type]
            RecordingTopic("replies", self.sent),  # type: ignore[arg-type]
            self._remember,
        )
        self.spec = Decider(
            "token",
            self.table,
            token_decider.TokenState.from_dict,
            token_decider.decide,
            token_decider.evolve,
            sealed_for=lambda state, cmd: state.owner or cmd.body["owner"],
        )

    def _key(self, key_id: str) -> bytes:
        return self.keys[key_id]

    async def _remember(self, key_id: str, key: bytes) -> None:
        self.keys[key_id] = key

    def give_owner_a_key(self) -> str:
        key_id = self.codec.identity_key_id(OWNER)
        self.keys[key_id] = secrets.token_bytes(32)
        return key_id

    def command(self, name: str, body: dict[str, Any], correlation_id: str) -> Opened:
        raw = self.codec.seal(name, body, aggregate_key="agg", correlation_id=correlation_id)
        return self.codec.open(raw)

    def opened(self) -> list[tuple[str, Opened]]:
        return [(topic, self.codec.open(value)) for topic, _, value in self.sent]


def create_token(ident: str = "TOKabc") -> dict[str, Any]:
    return {
        "token_id": ident,
        "owner": OWNER,
        "owner_device": "DVCabc",
        "content": b"sealed",
        "expires_at": NOW + timedelta(days=1),
        "for_identity": None,
        "password_hash": None,
        "requested_at": NOW,
    }


def delete_token(actor: str) -> dict[str, Any]:
    return {"token_id": "TOKabc", "actor": actor, "requested_at": NOW}


async def test_accepted_command_appends_its_events_sealed_for_the_owner_then_answers() -> None:
    w = World()
    key_id = w.give_owner_a_key()

    events = await w.runtime.decide(w.spec, "agg", w.command("CreateToken", create_token(), "c1"))

    assert events is not None and [name for name, _ in events] == ["TokenCreated"]
    sent = w.opened()
    assert [(topic, o.name) for topic, o in sent] == [
        ("events", "TokenCreated"),
        ("events", "Reply"),
    ]
    created, reply = sent[0][1], sent[1][1]
    assert created.envelope["data_key_id"] == key_id  # crypto-shredding reaches it
    assert created.envelope["aggregate_version"] == 1
    assert created.envelope["correlation_id"] == "c1"
    # The typed rule's event, as the log records it (schemas/typed.py at the worker's edge).
    expected = {k: v for k, v in create_token().items() if k != "requested_at"}
    assert created.body == {**expected, "created_at": NOW}
    # The answer rides behind the events on their partition: the projector writes them
    # before it forwards the answer, so the client reads its own write.
    assert reply.body["ok"] is True and reply.body["error_code"] is None
    assert reply.body["status"] == deciding.NO_STATUS  # the API chooses it
    assert list(w.table["agg"]["handled"]) == ["c1"] and w.table["agg"]["owner"] == OWNER


async def test_a_redelivered_command_is_answered_as_before_and_appends_nothing() -> None:
    w = World()
    w.give_owner_a_key()
    command = w.command("CreateToken", create_token(), "c1")
    await w.runtime.decide(w.spec, "agg", command)
    w.sent.clear()

    again = await w.runtime.decide(w.spec, "agg", command)

    assert again == []
    assert [(t, o.name, o.body["ok"]) for t, o in w.opened()] == [("events", "Reply", True)]


async def test_a_rejection_is_answered_with_its_code_and_changes_nothing() -> None:
    w = World()
    w.give_owner_a_key()
    await w.runtime.decide(w.spec, "agg", w.command("CreateToken", create_token(), "c1"))
    before = dict(w.table["agg"])
    w.sent.clear()

    outcome = await w.runtime.decide(
        w.spec, "agg", w.command("DeleteToken", delete_token("did:e:someone-else"), "c2")
    )

    assert outcome is None
    [(topic, reply)] = w.opened()
    assert topic == "replies" and reply.name == "Reply"
    assert (reply.body["ok"], reply.body["error_code"]) == (False, token_decider.NOT_FOUND)
    assert w.table["agg"] == before  # not even remembered: a retry is decided again


async def test_a_failing_rule_refuses_that_command_not_the_agent() -> None:
    w = World()
    w.give_owner_a_key()

    def broken(*_: Any) -> Any:
        raise ValueError("bug in a rule")

    spec = Decider("token", w.table, w.spec.load, broken, w.spec.evolve, w.spec.sealed_for)
    outcome = await w.runtime.decide(spec, "agg", w.command("CreateToken", create_token(), "c1"))

    assert outcome is None
    [(_, reply)] = w.opened()
    assert (reply.body["ok"], reply.body["error_code"]) == (False, "error.platform.unexpected")
    # The next command of the aggregate is decided normally.
    w.sent.clear()
    assert await w.runtime.decide(w.spec, "agg", w.command("CreateToken", create_token(), "c2"))


async def test_an_idempotency_key_reused_with_another_body_is_refused() -> None:
    w = World()
    w.give_owner_a_key()
    key = idempotency.key_id(OWNER, "POST", "/Tokens", "client-key-1")
    first = idempotency.correlation_id(key, "fingerprint-a")
    other_body = idempotency.correlation_id(key, "fingerprint-b")
    await w.runtime.decide(w.spec, "agg", w.command("CreateToken", create_token(), first))
    w.sent.clear()

    outcome = await w.runtime.decide(
        w.spec, "agg", w.command("CreateToken", create_token("TOKother"), other_body)
    )

    assert outcome is None
    [(_, reply)] = w.opened()
    assert (reply.body["ok"], reply.body["error_code"]) == (False, idempotency.KEY_REUSED)


async def test_without_the_owners_data_key_the_command_is_refused_as_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = World()  # the owner's key never arrives
    monkeypatch.setattr(deciding, "DATA_KEY_WAIT_S", 0.2)
    loads: list[str] = []

    async def loader(key_id: str) -> bool:
        loads.append(key_id)
        return False

    monkeypatch.setattr(deciding, "_key_loaders", [])  # restored after the test
    deciding.set_key_loader(loader)
    outcome = await w.runtime.decide(w.spec, "agg", w.command("CreateToken", create_token(), "c1"))

    assert outcome is None
    assert loads == [w.codec.identity_key_id(OWNER)]  # asked the store before giving up
    [(_, reply)] = w.opened()
    assert (reply.body["ok"], reply.body["error_code"]) == (
        False,
        "error.platform.serviceUnavailable",
    )
    assert "agg" not in w.table


async def test_an_aggregate_remembers_only_its_latest_commands() -> None:
    w = World()
    w.give_owner_a_key()
    spec = Decider(
        "token",
        w.table,
        w.spec.load,
        lambda state, command, now: [],  # accepted, nothing to append
        w.spec.evolve,
        w.spec.sealed_for,
    )
    for n in range(REMEMBERED_COMMANDS + 5):
        await w.runtime.decide(spec, "agg", w.command("CreateToken", create_token(), f"c{n}"))

    handled = list(w.table["agg"]["handled"])
    assert len(handled) == REMEMBERED_COMMANDS
    assert handled[-1] == f"c{REMEMBERED_COMMANDS + 4}" and "c0" not in handled


async def test_a_record_that_is_no_command_is_refused_as_unknown() -> None:
    w = World()
    w.give_owner_a_key()
    deleted = {"token_id": "TOKabc", "owner": OWNER, "deleted_at": NOW}  # an event
    outcome = await w.runtime.decide(w.spec, "agg", w.command("TokenDeleted", deleted, "c1"))

    assert outcome is None
    [(_, reply)] = w.opened()
    assert (reply.body["ok"], reply.body["error_code"]) == (
        False,
        "error.platform.validation.unknownCommand",
    )
