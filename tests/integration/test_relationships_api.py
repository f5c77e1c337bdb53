"""Templates, tokens and relationships through the real API, workers, Kafka and Cassandra."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from domain.relationship_decider import WRONG_STATUS
from store.topics import TopicNames, read_records
from tests.integration.api_client import Party, b64, code_of, new_party
from tests.integration.log_access import operator_codec
from tests.integration.stack import Stack
from tests.unit.test_relationship_decider import ACTIONS, ALLOWED, A, B
from tests.unit.test_relationship_decider import PATHS as STATE_PATHS

pytestmark = pytest.mark.integration

# The API path of each action of the state machine.
PATHS = {
    "Accept": "Accept",
    "Reject": "Reject",
    "Revoke": "Revoke",
    "Terminate": "Terminate",
    "RequestReactivation": "Reactivate",
    "AcceptReactivation": "Reactivate/Accept",
    "RejectReactivation": "Reactivate/Reject",
    "RevokeReactivation": "Reactivate/Revoke",
    "Decompose": "Decompose",
}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


async def _template(http: httpx.AsyncClient, owner: Party, **fields: Any) -> str:
    body = {"content": b64(b"template content"), **fields}
    answer = await http.post("/api/v1/RelationshipTemplates", json=body, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    template_id: str = answer.json()["result"]["id"]
    return template_id


async def _request(http: httpx.AsyncClient, peer: Party, template_id: str) -> httpx.Response:
    body = {"relationshipTemplateId": template_id, "creationContent": b64(b"hello")}
    return await http.post("/api/v1/Relationships", json=body, headers=peer.headers)


async def _act(http: httpx.AsyncClient, who: Party, rid: str, action: str) -> httpx.Response:
    return await http.put(f"/api/v1/Relationships/{rid}/{PATHS[action]}", headers=who.headers)


async def test_the_whole_lifecycle_with_its_audit_log(http: httpx.AsyncClient) -> None:
    owner, peer = await new_party(http), await new_party(http)
    template_id = await _template(http, owner, maxNumberOfAllocations=5)
    requested = await _request(http, peer, template_id)
    assert requested.status_code == 201, requested.text
    rel = requested.json()["result"]
    assert (rel["from"], rel["to"], rel["status"]) == (peer.address, owner.address, "Pending")
    rid = rel["id"]
    # The owner reads the request at once (read-your-writes across parties is not promised,
    # but the projection ran before the requester's 201).
    seen = await http.get(f"/api/v1/Relationships/{rid}", headers=owner.headers)
    assert seen.json()["result"]["creationContent"] == b64(b"hello")

    accept = await http.put(
        f"/api/v1/Relationships/{rid}/Accept",
        json={"creationResponseContent": b64(b"welcome")},
        headers=owner.headers,
    )
    assert accept.json()["result"]["status"] == "Active"
    assert accept.json()["result"]["creationResponseContent"] == b64(b"welcome")
    steps = [
        (peer, "Terminate", "Terminated"),
        (owner, "RequestReactivation", "Terminated"),
        (peer, "AcceptReactivation", "Active"),
        (owner, "Terminate", "Terminated"),
        (peer, "Decompose", "DeletionProposed"),
        (owner, "Decompose", "ReadyForDeletion"),
    ]
    for who, action, status in steps:
        answer = await _act(http, who, rid, action)
        assert answer.status_code == 200, (action, answer.text)
        assert answer.json()["result"]["status"] == status, action
    audit = answer.json()["result"]["auditLog"]
    assert [a["reason"] for a in audit] == [
        "Creation",
        "AcceptanceOfCreation",
        "Termination",
        "ReactivationRequested",
        "AcceptanceOfReactivation",
        "Termination",
        "Decomposition",
        "Decomposition",
    ]
    assert audit[2]["createdBy"] == peer.address and audit[2]["oldStatus"] == "Active"

    # Rejected and revoked requests end there; a new request between the pair is allowed.
    again = await _request(http, peer, template_id)
    rid2 = again.json()["result"]["id"]
    assert (await _act(http, owner, rid2, "Reject")).json()["result"]["status"] == "Rejected"
    third = await _request(http, peer, template_id)
    rid3 = third.json()["result"]["id"]
    assert (await _act(http, peer, rid3, "Revoke")).json()["result"]["status"] == "Revoked"
    listed = await http.get("/api/v1/Relationships", headers=peer.headers)
    assert {r["id"] for r in listed.json()["result"]} == {rid, rid2, rid3}


async def _in_state(http: httpx.AsyncClient, start: str) -> tuple[Party, Party, str]:
    """A fresh pair whose relationship is in `start` (A requested, B owns the template)."""
    a, b = await asyncio.gather(new_party(http), new_party(http))
    rid = (await _request(http, a, await _template(http, b))).json()["result"]["id"]
    for action, actor in STATE_PATHS[start]:
        assert (await _act(http, a if actor == A else b, rid, action)).status_code == 200
    return a, b, rid


@pytest.mark.parametrize(
    "start",
    [
        "Pending",
        "Active",
        "Rejected",
        "Revoked",
        "Terminated",
        "Terminated+reactivation by A",
        "DeletionProposed by A",
        "ReadyForDeletion",
    ],
)
async def test_every_forbidden_transition_is_refused(http: httpx.AsyncClient, start: str) -> None:
    a, b, rid = await _in_state(http, start)
    before = (await http.get(f"/api/v1/Relationships/{rid}", headers=a.headers)).json()["result"]
    refused = 0
    for action in ACTIONS:
        for name, party in ((A, a), (B, b)):
            expected = ALLOWED.get((start, action, name), WRONG_STATUS)
            if not expected.startswith("error."):
                continue  # allowed: the lifecycle test takes those steps
            answer = await _act(http, party, rid, action)
            assert code_of(answer) == (400, expected), (start, action, name)
            refused += 1
    after = (await http.get(f"/api/v1/Relationships/{rid}", headers=a.headers)).json()["result"]
    assert after == before  # nothing refused left a trace
    assert refused > 0


async def test_no_second_open_relationship_between_a_pair(http: httpx.AsyncClient) -> None:
    owner, peer = await new_party(http), await new_party(http)
    first = await _request(http, peer, await _template(http, owner))
    assert first.status_code == 201
    second = await _request(http, peer, await _template(http, owner))
    assert code_of(second) == (
        400,
        "error.platform.validation.relationshipRequest.relationshipToTargetAlreadyExists",
    )
    # Nor the other way round: the owner asking the peer.
    reverse = await _request(http, owner, await _template(http, peer))
    assert reverse.status_code == 400
    own = await _request(http, owner, await _template(http, owner))
    assert code_of(own)[1].endswith("cannotSendRelationshipRequestToYourself")


async def test_allocations_are_exact_under_concurrency_across_two_api_processes(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    limit, peers_count = 10, 50
    owner = await new_party(http)
    template_id = await _template(http, owner, maxNumberOfAllocations=limit)
    slots = asyncio.Semaphore(6)

    async def make_peer() -> Party:
        async with slots:
            return await new_party(http)

    peers = await asyncio.gather(*(make_peer() for _ in range(peers_count)))
    async with httpx.AsyncClient(base_url=stack.second_api(), timeout=60) as other:
        clients = [http, other]
        answers = await asyncio.gather(
            *(_request(clients[i % 2], p, template_id) for i, p in enumerate(peers))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == limit, [a.text for a in answers if a.status_code != 400][:3]
    exhausted = [a for a in answers if a.status_code != 201]
    assert {code_of(a) for a in exhausted} == {
        (400, "error.platform.validation.relationshipTemplate.maxNumberOfAllocationsExhausted")
    }
    listed = await http.get("/api/v1/Relationships", headers=owner.headers)
    assert listed.json()["pagination"]["totalRecords"] == limit


async def test_templates_and_tokens_expire_everywhere(
    http: httpx.AsyncClient, cassandra_session: Any
) -> None:
    owner, peer = await new_party(http), await new_party(http)
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    template_id = await _template(http, owner, expiresAt=soon)
    token = await http.post(
        "/api/v1/Tokens", json={"content": b64(b"qr"), "expiresAt": soon}, headers=owner.headers
    )
    token_id = token.json()["result"]["id"]
    assert (await http.get(f"/api/v1/Tokens/{token_id}")).status_code == 200
    got = await http.get(f"/api/v1/RelationshipTemplates/{template_id}", headers=peer.headers)
    assert got.status_code == 200
    await asyncio.sleep(4)
    assert code_of(await http.get(f"/api/v1/Tokens/{token_id}"))[0] == 404
    got = await http.get(f"/api/v1/RelationshipTemplates/{template_id}", headers=peer.headers)
    assert got.status_code == 404
    own = await http.get("/api/v1/Tokens", headers=owner.headers)
    assert own.json()["result"] == []
    assert code_of(await _request(http, peer, template_id)) == (
        400,
        "error.platform.validation.relationshipTemplate.expired",
    )
    # Gone from Cassandra itself (TTL), not only hidden by the API.
    assert (
        cassandra_session.execute("SELECT id FROM tokens WHERE id = %s", (token_id,)).one() is None
    )
    rows = cassandra_session.execute("SELECT id FROM templates WHERE id = %s", (template_id,))
    assert rows.one() is None
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    answer = await http.post(
        "/api/v1/Tokens", json={"content": b64(b"x"), "expiresAt": past}, headers=owner.headers
    )
    assert code_of(answer) == (400, "error.platform.validation.invalidPropertyValue")


async def test_a_third_identity_can_neither_read_nor_act(http: httpx.AsyncClient) -> None:
    owner, peer, stranger = [await new_party(http) for _ in range(3)]
    private = await _template(http, owner, forIdentity=peer.address)
    rid = (await _request(http, peer, private)).json()["result"]["id"]
    not_found = (404, "error.platform.recordNotFound")
    assert code_of(await http.get(f"/api/v1/Relationships/{rid}", headers=stranger.headers)) == (
        not_found
    )
    for action in ACTIONS:
        assert code_of(await _act(http, stranger, rid, action)) == not_found, action
    listed = await http.get("/api/v1/Relationships", headers=stranger.headers)
    assert listed.json()["result"] == []
    # The template is for the peer only; the stranger can neither read nor use it.
    answer = await http.get(f"/api/v1/RelationshipTemplates/{private}", headers=stranger.headers)
    assert code_of(answer) == not_found
    assert code_of(await _request(http, stranger, private)) == not_found
    assert (
        code_of(
            await http.delete(f"/api/v1/RelationshipTemplates/{private}", headers=stranger.headers)
        )
        == not_found
    )
    # Tokens: for one identity, or behind a password.
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"content": b64(b"t"), "expiresAt": soon, "forIdentity": peer.address}
    tok = (await http.post("/api/v1/Tokens", json=body, headers=owner.headers)).json()["result"]
    assert code_of(await http.get(f"/api/v1/Tokens/{tok['id']}")) == not_found
    assert code_of(await http.get(f"/api/v1/Tokens/{tok['id']}", headers=stranger.headers)) == (
        not_found
    )
    assert (await http.get(f"/api/v1/Tokens/{tok['id']}", headers=peer.headers)).status_code == 200
    deleted = await http.delete(f"/api/v1/Tokens/{tok['id']}", headers=stranger.headers)
    assert code_of(deleted) == not_found
    body = {"content": b64(b"t"), "expiresAt": soon, "password": "1234"}
    tok = (await http.post("/api/v1/Tokens", json=body, headers=owner.headers)).json()["result"]
    assert code_of(await http.get(f"/api/v1/Tokens/{tok['id']}"))[0] == 403
    assert code_of(await http.get(f"/api/v1/Tokens/{tok['id']}?password=4321"))[0] == 403
    assert (await http.get(f"/api/v1/Tokens/{tok['id']}?password=1234")).status_code == 200
    deleted = await http.delete(f"/api/v1/Tokens/{tok['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert code_of(await http.get(f"/api/v1/Tokens/{tok['id']}?password=1234"))[0] == 404


async def test_limits_and_bad_input_are_refused(http: httpx.AsyncClient) -> None:
    owner = await new_party(http)
    too_big = {"content": b64(b"x" * (32 * 1024 + 1))}
    answer = await http.post("/api/v1/RelationshipTemplates", json=too_big, headers=owner.headers)
    assert code_of(answer) == (400, "error.platform.validation.invalidPropertyValue")
    for bad in ({"content": "not base64!"}, {"content": b64(b"x"), "maxNumberOfAllocations": 0}):
        answer = await http.post("/api/v1/RelationshipTemplates", json=bad, headers=owner.headers)
        assert code_of(answer) == (400, "error.platform.validation.invalidPropertyValue"), bad
    answer = await http.get("/api/v1/Relationships?pageSize=1001", headers=owner.headers)
    assert code_of(answer) == (400, "error.platform.validation.invalidPropertyValue")
    answer = await _request(http, owner, "RLTnoSuchTemplate000")
    assert code_of(answer) == (404, "error.platform.recordNotFound")
    answer = await http.post("/api/v1/RelationshipTemplates", json={"content": "eA=="})
    assert code_of(answer) == (401, "error.platform.unauthorized")


async def test_every_change_reaches_both_mailboxes(http: httpx.AsyncClient, stack: Stack) -> None:
    owner, peer = await new_party(http), await new_party(http)
    rid = (await _request(http, peer, await _template(http, owner))).json()["result"]["id"]
    await _act(http, owner, rid, "Accept")
    await _act(http, peer, rid, "Terminate")
    await _act(http, peer, rid, "RequestReactivation")
    for _ in range(20):  # entries are sent right after the projection; give them a moment
        entries = await _mailbox_entries(stack, {owner.address, peer.address})
        by = {
            who: [
                (e["event_type"], json.loads(e["payload_json"]).get("status"))
                for e in entries
                if e["recipient"] == who
                and json.loads(e["payload_json"]).get("relationshipId") == rid
            ]
            for who in (owner.address, peer.address)
        }
        if all(len(v) >= 4 for v in by.values()) and len(by[owner.address]) >= 5:
            break
        await asyncio.sleep(0.5)
    # The owner also learns that its template was allocated; that comes from the template's
    # decider, so its place among the relationship's own entries is not fixed.
    allocated = ("RelationshipTemplateAllocated", None)
    assert by[owner.address].count(allocated) == 1
    by[owner.address].remove(allocated)
    assert by[owner.address] == [
        ("RelationshipStatusChanged", "Pending"),
        ("RelationshipStatusChanged", "Active"),
        ("RelationshipStatusChanged", "Terminated"),
        ("RelationshipReactivationRequested", "Terminated"),
    ]
    assert by[peer.address] == [
        ("RelationshipStatusChanged", "Pending"),
        ("RelationshipStatusChanged", "Active"),
        ("RelationshipStatusChanged", "Terminated"),
        ("RelationshipStatusChanged", "Terminated"),
    ]


async def _mailbox_entries(stack: Stack, recipients: set[str]) -> list[dict[str, Any]]:
    """Every mailbox entry for `recipients`, opened with the keys from the data-key table."""
    codec = await operator_codec(stack)
    mine = {codec.identity_key_id(r) for r in recipients}
    topic = TopicNames(stack.cluster.topic_prefix).mailbox_entries
    out = []
    for _, raw in await read_records(stack.cluster.kafka_bootstrap, topic):
        if raw is None:
            continue
        try:
            opened = codec.open(raw)
        except KeyError:  # another test's identity, whose key was not read: not ours
            continue
        if opened.envelope["data_key_id"] in mine:
            out.append(opened.body)
    return sorted(out, key=lambda e: e["occurred_at"])
