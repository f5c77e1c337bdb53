"""The decide agents' steps (streams/agent_steps.py) without Kafka: the relationship
request's way across two aggregates, the challenge gate, forgetting a deleted identity.

The topics record what would be sent, in one shared log; the tables are dicts; the codec,
the decide loop and the deciders are the real ones (streams/aggregates.py).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from backbone.deletion_policy import anonymous_address, sha256_hex
from domain import challenge_decider, relationship_choreography
from schemas.commands import OpenRelationship, RequestRelationship
from schemas.typed import as_type, to_avro
from store.envelopes import EnvelopeCodec, Opened
from streams.agent_steps import Decide, IdentitySteps, RelationshipRequest, opened_commands
from streams.aggregates import aggregates
from streams.deciding import Runtime
from tests.unit.test_decide_loop import RecordingTopic

OWNER = "did:e:localhost:dids:0123456789abcdef012345"
PEER = "did:e:localhost:dids:fedcba9876543210fedcba"
NOW = datetime.now(UTC).replace(microsecond=0)


class World:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.codec = EnvelopeCodec(
            base64.b64encode(secrets.token_bytes(32)).decode(), self.keys.__getitem__
        )
        for address in (OWNER, PEER):
            self.keys[self.codec.identity_key_id(address)] = secrets.token_bytes(32)
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.tables: dict[str, dict[str, Any]] = {}
        self.runtime = Runtime(
            self.codec,
            self.topic("events"),
            self.topic("replies"),
            self._remember,
        )
        self.aggregates = aggregates(lambda name: self.tables.setdefault(name, {}))
        self.requests = RelationshipRequest(
            self.runtime,
            self.aggregates.templates,
            self.aggregates.pairs,
            self.topic("template-commands"),
            self.topic("relationship-commands"),
        )
        self.finished: list[str] = []
        self.identity = IdentitySteps(
            self.runtime,
            self.aggregates.identities,
            self.tables.setdefault("challenge-uses", {}),
            self.topic("identity-commands"),
            self._finish,
        )

    def topic(self, name: str) -> Any:
        return RecordingTopic(name, self.sent)

    async def _remember(self, key_id: str, key: bytes) -> None:
        self.keys[key_id] = key

    async def _finish(self, key: str, command: Opened) -> bool:
        self.finished.append(key)
        return True

    def command(self, name: str, body: dict[str, Any], corr: str, key: str = "agg") -> Opened:
        return self.codec.open(self.codec.seal(name, body, aggregate_key=key, correlation_id=corr))

    def opened(self) -> list[tuple[str, bytes, Opened]]:
        return [(topic, key, self.codec.open(value)) for topic, key, value in self.sent]


def create_template() -> dict[str, Any]:
    return {
        "template_id": "RLTabc",
        "owner": OWNER,
        "owner_device": "DVCowner",
        "content": b"sealed",
        "expires_at": None,
        "max_allocations": None,
        "for_identity": None,
        "password_hash": None,
        "requested_at": NOW,
    }


def request_relationship(rid: str = "RELabc") -> dict[str, Any]:
    return {
        "template_id": "RLTabc",
        "relationship_id": rid,
        "requester": PEER,
        "requester_device": "DVCpeer",
        "creation_content": b"hello",
        "requested_at": NOW,
    }


async def _template_with_request(w: World) -> Opened:
    template = w.codec.aggregate_key("template", "RLTabc")
    await w.requests.at_template(template, w.command("CreateTemplate", create_template(), "c1"))
    w.sent.clear()
    request = w.command("RequestRelationship", request_relationship(), "c2")
    await w.requests.at_template(template, request)
    return request


async def test_an_allocated_request_goes_on_to_the_pair_which_answers_it() -> None:
    w = World()
    request = await _template_with_request(w)

    sent = w.opened()
    # The allocation is appended, but the template does not answer: the pair's decider does.
    assert [(topic, o.name) for topic, _, o in sent] == [
        ("events", "TemplateAllocated"),
        ("relationship-commands", "OpenRelationship"),
    ]
    _, key, opening = sent[1]
    typed = as_type(RequestRelationship, request.body)
    pair, expected = relationship_choreography.opening(typed, OWNER)
    assert key == w.codec.aggregate_key("pair", pair).encode()
    assert (opening.name, opening.body) == to_avro(expected)
    assert opening.envelope["correlation_id"] == "c2"  # the same request, end to end
    assert opening.envelope["causation_id"] == request.envelope["event_id"]

    w.sent.clear()
    await w.requests.at_pair(key.decode(), opening)
    assert [(topic, o.name) for topic, _, o in w.opened()] == [
        ("events", "RelationshipCreated"),
        ("events", "Reply"),
    ]


async def test_a_refused_opening_is_answered_and_gives_the_allocation_back() -> None:
    w = World()
    request = await _template_with_request(w)
    _, key, opening = w.opened()[1]
    await w.requests.at_pair(key.decode(), opening)
    w.sent.clear()
    # A second request of the same peer, with the first relationship still pending.
    again = {**opening.body, "relationship_id": "RELdef"}

    await w.requests.at_pair(key.decode(), w.command("OpenRelationship", again, "c3"))

    sent = w.opened()
    assert [(topic, o.name) for topic, _, o in sent] == [
        ("replies", "Reply"),
        ("template-commands", "ReleaseAllocation"),
    ]
    assert sent[0][2].body["ok"] is False
    assert sent[1][1] == w.codec.aggregate_key("template", "RLTabc").encode()
    release = relationship_choreography.release(as_type(OpenRelationship, again))
    assert (sent[1][2].name, sent[1][2].body) == to_avro(release)
    assert request.body["requester"] == sent[1][2].body["requester"]


def add_device(challenge: str = "CHLabc") -> dict[str, Any]:
    # The gate compares the challenge's expiry with the clock when the step runs, which can
    # be many minutes after this module was imported (the whole suite collects first).
    return {
        "challenge_id": challenge,
        "challenge_expires_at": datetime.now(UTC) + timedelta(minutes=5),
        "address": OWNER,
        "device_id": "DVCnew",
        "username": "user",
        "password_hash": "hash",
        "created_by_device": "DVCowner",
        "requested_at": NOW,
    }


async def test_a_challenge_lets_one_request_through_to_the_identity_and_refuses_others() -> None:
    w = World()
    gate = w.codec.aggregate_key("challenge", "CHLabc")

    await w.identity(gate, w.command("AddDevice", add_device(), "c1", gate))
    await w.identity(gate, w.command("AddDevice", add_device(), "c1", gate))  # a retry
    await w.identity(gate, w.command("AddDevice", add_device(), "c2", gate))

    sent = w.opened()
    identity = w.codec.aggregate_key("identity", OWNER).encode()
    assert [(topic, key, o.name) for topic, key, o in sent] == [
        ("identity-commands", identity, "AddDevice"),
        ("identity-commands", identity, "AddDevice"),
        ("replies", b"c2", "Reply"),
    ]
    assert sent[2][2].body["error_code"] == challenge_decider.CHALLENGE_USED


async def test_the_final_deletion_step_is_handed_over_not_decided() -> None:
    w = World()
    identity = w.codec.aggregate_key("identity", OWNER)
    finish = {"deletion_process_id": "DLP1", "requested_at": NOW}

    await w.identity(identity, w.command("FinishIdentityDeletion", finish, "c1", identity))

    assert w.finished == [identity]
    assert w.sent == []


async def test_a_forgotten_owner_drops_the_aggregate_and_nothing_is_decided() -> None:
    w = World()
    tokens = Decide(w.runtime, w.aggregates.tokens)
    token = w.codec.aggregate_key("token", "TOKabc")
    created = {
        "token_id": "TOKabc",
        "owner": OWNER,
        "owner_device": "DVCowner",
        "content": b"sealed",
        "expires_at": NOW + timedelta(days=1),
        "for_identity": None,
        "password_hash": None,
        "requested_at": NOW,
    }
    await tokens(token, w.command("CreateToken", created, "c1"))
    assert token in w.tables["tokens"]
    w.sent.clear()
    forget = {
        "address_hash": sha256_hex(OWNER),
        "anonymous": anonymous_address(OWNER),
        "deletion_process_id": "DLP1",
    }

    await tokens(token, w.command("ForgetIdentity", forget, "c2"))

    assert token not in w.tables["tokens"]
    assert w.sent == []  # no event, no answer: the deletion waits for no one


async def test_an_agent_reads_only_records_it_can_open() -> None:
    w = World()
    good = w.codec.seal("CreateTemplate", create_template(), aggregate_key="k", correlation_id="c")

    async def records() -> AsyncIterator[tuple[bytes | None, bytes | None]]:
        yield b"k", None  # a tombstone
        yield None, good  # no key
        yield b"k", good

    opened = [(key, o.name) async for key, o in opened_commands(records(), w.codec)]

    assert opened == [("k", "CreateTemplate")]
