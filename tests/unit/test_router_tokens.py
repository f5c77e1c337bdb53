"""`/Tokens` against a fake bus and read store: what a token's owner and its readers get."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from store.readmodels.sharing import Token
from tests.unit.fake_api import FakeApi, Party, error_code, later, running

NOT_FOUND = "error.platform.recordNotFound"
WRONG_PASSWORD = "error.platform.validation.wrongPassword"
CONTENT = base64.b64encode(b"ciphertext").decode()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from running()


def _projected(api: FakeApi) -> None:
    """What the token's decider and projection do with an accepted CreateToken."""

    def write(c: dict[str, Any]) -> None:
        api.reads.tokens.rows[c["token_id"]] = Token(
            c["token_id"],
            c["owner"],
            c["owner_device"],
            c["content"],
            c["requested_at"],
            c["expires_at"],
            c["for_identity"],
            c["password_hash"],
        )

    api.bus.on("CreateToken", write)


def _create(api: FakeApi, owner: Party, **extra: Any) -> str:
    body = {"content": CONTENT, "expiresAt": later().isoformat(), **extra}
    response = api.client.post("/api/v1/Tokens", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    token_id: str = response.json()["result"]["id"]
    return token_id


def test_a_created_token_is_read_back_by_whoever_holds_its_id(api: FakeApi) -> None:
    _projected(api)
    owner, reader = api.party(), api.party()
    token_id = _create(api, owner)
    assert token_id.startswith("TOK")
    [command] = api.bus.named("CreateToken")
    assert (command["owner"], command["owner_device"]) == (owner.address, owner.device_id)
    assert command["content"] == b"ciphertext"

    for headers in (reader.headers, {}):  # another identity, and anonymously
        response = api.client.get(f"/api/v1/Tokens/{token_id}", headers=headers)
        assert response.status_code == 200, response.text
        token = response.json()["result"]
        assert (token["id"], token["createdBy"], token["content"]) == (
            token_id,
            owner.address,
            CONTENT,
        )
        assert token["passwordProtected"] is False


def test_an_unknown_token_is_not_found(api: FakeApi) -> None:
    response = api.client.get("/api/v1/Tokens/TOK00000000000000000")
    assert (response.status_code, error_code(response)) == (404, NOT_FOUND)


def test_a_token_for_one_identity_is_not_found_by_any_other(api: FakeApi) -> None:
    _projected(api)
    owner, recipient, stranger = api.party(), api.party(), api.party()
    token_id = _create(api, owner, forIdentity=recipient.address)
    path = f"/api/v1/Tokens/{token_id}"
    assert api.client.get(path, headers=recipient.headers).status_code == 200
    assert api.client.get(path, headers=owner.headers).status_code == 200
    for headers in (stranger.headers, {}):
        response = api.client.get(path, headers=headers)
        assert (response.status_code, error_code(response)) == (404, NOT_FOUND)


def test_a_password_is_asked_of_everyone_but_the_owner(api: FakeApi) -> None:
    _projected(api)
    owner, reader = api.party(), api.party()
    token_id = _create(api, owner, password="open sesame")
    path = f"/api/v1/Tokens/{token_id}"
    for asked in (path, f"{path}?password=wrong"):
        response = api.client.get(asked, headers=reader.headers)
        assert (response.status_code, error_code(response)) == (403, WRONG_PASSWORD)
    answered = api.client.get(f"{path}?password=open sesame", headers=reader.headers)
    assert answered.json()["result"]["passwordProtected"] is True
    assert api.client.get(path, headers=owner.headers).status_code == 200


def test_an_identity_lists_only_its_own_tokens(api: FakeApi) -> None:
    _projected(api)
    owner, other = api.party(), api.party()
    mine = {_create(api, owner) for _ in range(2)}
    theirs = _create(api, other)
    listed = api.client.get("/api/v1/Tokens", headers=owner.headers).json()
    assert {t["id"] for t in listed["result"]} == mine
    assert listed["pagination"]["totalRecords"] == 2
    asked = api.client.get(f"/api/v1/Tokens?ids={theirs}", headers=owner.headers).json()
    assert asked["result"] == []
    assert api.client.get("/api/v1/Tokens").status_code == 401


def test_an_expired_token_is_gone_though_its_row_is_not_yet(api: FakeApi) -> None:
    owner = api.party()
    api.reads.tokens.rows["TOK00000000000000001"] = Token(
        "TOK00000000000000001",
        owner.address,
        owner.device_id,
        b"x",
        later(-2),
        later(-1),
        None,
        None,
    )
    response = api.client.get("/api/v1/Tokens/TOK00000000000000001", headers=owner.headers)
    assert (response.status_code, error_code(response)) == (404, NOT_FOUND)
    assert api.client.get("/api/v1/Tokens", headers=owner.headers).json()["result"] == []


def test_a_deletion_the_decider_refuses_is_answered_with_its_status_and_code(
    api: FakeApi,
) -> None:
    stranger = api.party()
    api.bus.refuse("DeleteToken", 403, "error.platform.forbidden")
    response = api.client.delete("/api/v1/Tokens/TOK00000000000000002", headers=stranger.headers)
    assert (response.status_code, error_code(response)) == (403, "error.platform.forbidden")
    assert api.bus.named("DeleteToken")[0]["actor"] == stranger.address


def test_an_accepted_deletion_is_204(api: FakeApi) -> None:
    owner = api.party()
    response = api.client.delete("/api/v1/Tokens/TOK00000000000000002", headers=owner.headers)
    assert response.status_code == 204
    assert api.bus.named("DeleteToken") == [
        {
            "token_id": "TOK00000000000000002",
            "actor": owner.address,
            "requested_at": api.bus.named("DeleteToken")[0]["requested_at"],
        }
    ]
