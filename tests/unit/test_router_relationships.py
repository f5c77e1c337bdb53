"""`/Relationships` against a fake bus and read store: the two parties see and act on a
relationship, anyone else finds nothing, and the decider's refusals reach the client."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from store.readmodels.relationships import AuditEntry, Relationship
from tests.unit.fake_api import NOW, FakeApi, Party, error_code, running

NOT_FOUND = "error.platform.recordNotFound"
ALREADY_EXISTS = "error.platform.validation.relationshipRequest.relationshipToTargetAlreadyExists"
TEMPLATE = "RLT00000000000000001"
CONTENT = base64.b64encode(b"hello").decode()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from running()


def _request_projected(api: FakeApi, owner: Party) -> None:
    """What the template's and the pair's deciders and the projection make of a request
    against `owner`'s template."""

    def write(c: dict[str, Any]) -> None:
        api.reads.relationships.put(
            Relationship(
                c["relationship_id"],
                c["template_id"],
                c["requester"],
                owner.address,
                "Pending",
                c["creation_content"],
                None,
                None,
                c["requested_at"],
            )
        )
        api.reads.relationships.audits[c["relationship_id"]] = [
            AuditEntry("Creation", None, "Pending", c["requester"], c["requester_device"], NOW)
        ]

    api.bus.on("RequestRelationship", write)


def _accept_projected(api: FakeApi) -> None:
    def write(c: dict[str, Any]) -> None:
        relationships = api.reads.relationships
        row = relationships.rows[c["relationship_id"]]
        relationships.put(dataclasses.replace(row, status="Active"))

    api.bus.on("ChangeRelationship", write)


def _requested(api: FakeApi, owner: Party, requester: Party) -> str:
    _request_projected(api, owner)
    body = {"relationshipTemplateId": TEMPLATE, "creationContent": CONTENT}
    response = api.client.post("/api/v1/Relationships", json=body, headers=requester.headers)
    assert response.status_code == 201, response.text
    relationship_id: str = response.json()["result"]["id"]
    return relationship_id


def test_a_request_is_readable_by_both_parties_at_once(api: FakeApi) -> None:
    owner, requester = api.party(), api.party()
    relationship_id = _requested(api, owner, requester)
    [command] = api.bus.named("RequestRelationship")
    assert (command["template_id"], command["requester"]) == (TEMPLATE, requester.address)
    for party in (owner, requester):
        response = api.client.get(f"/api/v1/Relationships/{relationship_id}", headers=party.headers)
        assert response.status_code == 200, response.text
        shown = response.json()["result"]
        assert (shown["from"], shown["to"], shown["status"]) == (
            requester.address,
            owner.address,
            "Pending",
        )
        assert shown["creationContent"] == CONTENT
        assert [a["newStatus"] for a in shown["auditLog"]] == ["Pending"]
        assert shown["peerDeletionInfo"] is None


def test_the_other_party_accepts(api: FakeApi) -> None:
    owner, requester = api.party(), api.party()
    relationship_id = _requested(api, owner, requester)
    _accept_projected(api)
    response = api.client.put(
        f"/api/v1/Relationships/{relationship_id}/Accept", json={}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["status"] == "Active"
    [command] = api.bus.named("ChangeRelationship")
    assert (command["action"], command["actor"]) == ("Accept", owner.address)


def test_a_request_the_decider_refuses_is_answered_with_its_code(api: FakeApi) -> None:
    requester = api.party()
    api.bus.refuse("RequestRelationship", 400, ALREADY_EXISTS)
    body = {"relationshipTemplateId": TEMPLATE, "creationContent": CONTENT}
    response = api.client.post("/api/v1/Relationships", json=body, headers=requester.headers)
    assert (response.status_code, error_code(response)) == (400, ALREADY_EXISTS)


def test_a_third_identity_finds_nothing_and_can_do_nothing(api: FakeApi) -> None:
    owner, requester, stranger = api.party(), api.party(), api.party()
    relationship_id = _requested(api, owner, requester)
    sent = len(api.bus.sent)
    path = f"/api/v1/Relationships/{relationship_id}"
    for response in (
        api.client.get(path, headers=stranger.headers),
        api.client.put(f"{path}/Accept", json={}, headers=stranger.headers),
        api.client.put(f"{path}/Terminate", headers=stranger.headers),
        api.client.get("/api/v1/Relationships/REL00000000000000009", headers=owner.headers),
    ):
        assert (response.status_code, error_code(response)) == (404, NOT_FOUND)
    assert len(api.bus.sent) == sent  # nothing reached a decider
    listed = api.client.get("/api/v1/Relationships", headers=stranger.headers).json()
    assert listed["result"] == []
    listed = api.client.get("/api/v1/Relationships", headers=requester.headers).json()
    assert [r["id"] for r in listed["result"]] == [relationship_id]


def test_can_create_says_no_while_a_relationship_is_open(api: FakeApi) -> None:
    owner, requester, other = api.party(), api.party(), api.party()

    def can_create(party: Party, peer: str) -> Any:
        return api.client.get(f"/api/v1/Relationships/CanCreate?peer={peer}", headers=party.headers)

    assert can_create(requester, owner.address).json() == {"result": {"canCreate": True}}
    _requested(api, owner, requester)
    assert can_create(requester, owner.address).json() == {
        "result": {"canCreate": False, "code": ALREADY_EXISTS}
    }
    assert can_create(owner, requester.address).json()["result"]["canCreate"] is False
    assert can_create(requester, other.address).json()["result"]["canCreate"] is True
    refused = can_create(requester, requester.address)
    assert refused.status_code == 400
