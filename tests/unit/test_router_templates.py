"""`/RelationshipTemplates` against a fake bus and read store: what a template's owner and
the peers it is shared with get."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from store.readmodels.sharing import Template
from tests.unit.fake_api import FakeApi, Party, error_code, later, running

NOT_FOUND = "error.platform.recordNotFound"
WRONG_PASSWORD = "error.platform.validation.wrongPassword"
CONTENT = base64.b64encode(b"template").decode()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from running()


def _template(
    api: FakeApi,
    owner: Party,
    template_id: str = "RLT00000000000000001",
    for_identity: str | None = None,
    password: str | None = None,
) -> str:
    """A template as the projection wrote it."""
    api.reads.templates.rows[template_id] = Template(
        template_id,
        owner.address,
        owner.device_id,
        b"template",
        later(-1),
        later(),
        5,
        for_identity,
        f"hashed:{password}" if password else None,
    )
    return f"/api/v1/RelationshipTemplates/{template_id}"


def test_a_template_is_created_for_its_owner(api: FakeApi) -> None:
    owner = api.party()
    response = api.client.post(
        "/api/v1/RelationshipTemplates",
        json={"content": CONTENT, "maxNumberOfAllocations": 5},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    [command] = api.bus.named("CreateTemplate")
    assert command["template_id"] == response.json()["result"]["id"]
    assert (command["owner"], command["max_allocations"]) == (owner.address, 5)


def test_a_peer_reads_a_template_by_its_id(api: FakeApi) -> None:
    owner, peer = api.party(), api.party()
    response = api.client.get(_template(api, owner), headers=peer.headers)
    assert response.status_code == 200, response.text
    template = response.json()["result"]
    assert (template["createdBy"], template["content"]) == (owner.address, CONTENT)
    assert template["maxNumberOfAllocations"] == 5
    assert api.bus.sent == []  # no password: nothing to record


def test_an_unknown_or_foreign_template_is_not_found(api: FakeApi) -> None:
    owner, recipient, stranger = api.party(), api.party(), api.party()
    path = _template(api, owner, for_identity=recipient.address)
    assert api.client.get(path, headers=recipient.headers).status_code == 200
    for asked in (path, "/api/v1/RelationshipTemplates/RLT00000000000000009"):
        response = api.client.get(asked, headers=stranger.headers)
        assert (response.status_code, error_code(response)) == (404, NOT_FOUND)


def test_a_peer_with_the_password_is_recorded_as_its_collector(api: FakeApi) -> None:
    owner, peer = api.party(), api.party()
    path = _template(api, owner, password="shared secret")
    refused = api.client.get(path, headers=peer.headers)
    assert (refused.status_code, error_code(refused)) == (403, WRONG_PASSWORD)
    assert api.bus.sent == []
    answered = api.client.get(f"{path}?password=shared secret", headers=peer.headers)
    assert answered.status_code == 200
    [collected] = api.bus.named("CollectTemplate")
    assert collected["collector"] == peer.address
    # The owner needs no password and collects nothing.
    assert api.client.get(path, headers=owner.headers).status_code == 200
    assert len(api.bus.named("CollectTemplate")) == 1


def test_an_identity_lists_only_its_own_templates(api: FakeApi) -> None:
    owner, other = api.party(), api.party()
    _template(api, owner, "RLT00000000000000001")
    _template(api, other, "RLT00000000000000002")
    listed = api.client.get("/api/v1/RelationshipTemplates", headers=owner.headers).json()
    assert [t["id"] for t in listed["result"]] == ["RLT00000000000000001"]


def test_a_refused_deletion_keeps_the_deciders_status_and_code(api: FakeApi) -> None:
    stranger = api.party()
    api.bus.refuse("DeleteTemplate", 404, NOT_FOUND)
    response = api.client.delete(
        "/api/v1/RelationshipTemplates/RLT00000000000000001", headers=stranger.headers
    )
    assert (response.status_code, error_code(response)) == (404, NOT_FOUND)
