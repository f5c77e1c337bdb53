"""Idempotency-Key through the real API, workers, Kafka and Cassandra: a repeated request is
answered with the first outcome and writes nothing twice; the key with another body is
refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from connector.backbone_client import BackboneClient
from schemas.signatures import serialize_public_key
from tests.integration.api_client import Party, b64, code_of, new_party, relate
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration

REUSED = "error.platform.validation.idempotencyKeyReused"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


def _keyed(party: Party, key: str | None = None) -> dict[str, str]:
    return {**party.headers, "Idempotency-Key": key or f"k-{uuid.uuid4()}"}


async def _received(http: httpx.AsyncClient, who: Party, message_id: str) -> int:
    page = await http.get("/api/v1/Mailbox?since=0&limit=1000", headers=who.headers)
    return sum(
        1
        for e in page.json()["result"]
        if e["type"] == "MessageReceived" and message_id in str(e["payload"])
    )


async def _until(check: Any, timeout_s: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_a_repeated_message_is_one_message_and_another_body_is_refused(
    http: httpx.AsyncClient,
) -> None:
    sender, recipient = await new_party(http), await new_party(http)
    await relate(http, recipient, sender)
    headers = _keyed(sender)
    body = {
        "recipients": [{"address": recipient.address, "encryptedKey": b64(b"key")}],
        "body": b64(b"hello once"),
    }
    first = await http.post("/api/v1/Messages", json=body, headers=headers)
    again = await http.post("/api/v2/Messages", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["result"] == again.json()["result"]  # same id, same createdAt
    message_id = first.json()["result"]["id"]
    assert await _until(lambda: _received(http, recipient, message_id)) == 1
    await asyncio.sleep(1)  # a second delivery would have arrived by now
    assert await _received(http, recipient, message_id) == 1

    other = {**body, "body": b64(b"hello twice")}
    assert code_of(await http.post("/api/v1/Messages", json=other, headers=headers)) == (
        422,
        REUSED,
    )
    # Without a key, or with another key, the same body is a new message.
    fresh = await http.post("/api/v1/Messages", json=body, headers=_keyed(sender))
    assert fresh.status_code == 201 and fresh.json()["result"]["id"] != message_id


async def test_a_key_belongs_to_its_caller(http: httpx.AsyncClient) -> None:
    a, b = await new_party(http), await new_party(http)
    key = f"shared-{uuid.uuid4()}"
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"content": b64(b"token"), "expiresAt": expires}
    mine = await http.post("/api/v1/Tokens", json=body, headers=_keyed(a, key))
    theirs = await http.post("/api/v1/Tokens", json=body, headers=_keyed(b, key))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["result"]["id"] != theirs.json()["result"]["id"]
    repeat = await http.post("/api/v1/Tokens", json=body, headers=_keyed(a, key))
    assert repeat.json()["result"] == mine.json()["result"]


async def test_a_repeated_relationship_step_gets_the_first_answer(
    http: httpx.AsyncClient,
) -> None:
    owner, peer = await new_party(http), await new_party(http)
    template = await http.post(
        "/api/v1/RelationshipTemplates", json={"content": b64(b"t")}, headers=_keyed(owner)
    )
    body = {"relationshipTemplateId": template.json()["result"]["id"], "creationContent": "eA"}
    request_key = _keyed(peer)
    requested = await http.post("/api/v1/Relationships", json=body, headers=request_key)
    repeated = await http.post("/api/v1/Relationships", json=body, headers=request_key)
    assert requested.status_code == repeated.status_code == 201, repeated.text
    rid = requested.json()["result"]["id"]
    assert repeated.json()["result"]["id"] == rid
    listed = await http.get("/api/v1/Relationships", headers=peer.headers)
    assert [r["id"] for r in listed.json()["result"]] == [rid]

    accept_key = _keyed(owner)
    accepted = await http.put(f"/api/v1/Relationships/{rid}/Accept", headers=accept_key)
    again = await http.put(f"/api/v1/Relationships/{rid}/Accept", headers=accept_key)
    assert accepted.status_code == again.status_code == 200, again.text
    assert again.json()["result"]["status"] == "Active"
    # Without the key the same step is a second step, and not allowed.
    assert (
        await http.put(f"/api/v1/Relationships/{rid}/Accept", headers=owner.headers)
    ).status_code == 400


async def test_a_repeated_identity_creation_is_one_identity(http: httpx.AsyncClient) -> None:
    client = BackboneClient(http, CLIENT_ID, CLIENT_SECRET)
    key = SigningKey.generate()
    signed = await client.signed_challenge(key)
    headers = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    body = {
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "identityPublicKey": client_public_key(key),
        "identityVersion": 1,
        "devicePassword": "a long enough password",
        "signedChallenge": signed,
    }
    first = await http.post("/api/v1/Identities", json=body, headers=headers)
    again = await http.post("/api/v1/Identities", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["result"] == again.json()["result"]
    device = first.json()["result"]["device"]
    assert await client.token(device["username"], "a long enough password")


def client_public_key(key: SigningKey) -> str:
    return serialize_public_key(bytes(key.verify_key))


async def test_a_repeated_file_upload_is_one_file(http: httpx.AsyncClient) -> None:
    owner = await new_party(http)
    headers = _keyed(owner)
    form = {
        "cipherHash": b64(b"h" * 32),
        "expiresAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    files = {"content": ("content", b"ciphertext" * 100, "application/octet-stream")}
    first = await http.post("/api/v1/Files", data=form, files=files, headers=headers)
    again = await http.post("/api/v1/Files", data=form, files=files, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["result"]["id"] == again.json()["result"]["id"]
    assert first.json()["result"]["createdAt"] == again.json()["result"]["createdAt"]


async def test_a_malformed_key_is_a_clear_400(http: httpx.AsyncClient) -> None:
    owner = await new_party(http)
    answer = await http.post(
        "/api/v1/Tokens",
        json={"content": b64(b"x"), "expiresAt": datetime.now(UTC).isoformat()},
        headers={**owner.headers, "Idempotency-Key": "x" * 300},
    )
    assert code_of(answer) == (400, "error.platform.validation.invalidIdempotencyKey")
