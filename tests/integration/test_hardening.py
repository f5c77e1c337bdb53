"""What hostile and malformed input broke (issue 19), each against the real stack: a test per
finding, failing before its fix."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from connector.backbone_client import BackboneClient
from schemas.signatures import serialize_public_key, serialize_signature
from tests.integration.api_client import code_of
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration

PASSWORD = "a long enough password"
USED = "error.platform.validation.device.challengeAlreadyUsed"
INVALID_CHALLENGE = "error.platform.validation.device.invalidChallenge"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> BackboneClient:
    return BackboneClient(http, CLIENT_ID, CLIENT_SECRET)


def _creation(key: SigningKey, text: str) -> dict[str, Any]:
    signature = key.sign(text.encode()).signature
    return {
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "identityPublicKey": serialize_public_key(bytes(key.verify_key)),
        "identityVersion": 1,
        "devicePassword": PASSWORD,
        "signedChallenge": {"challenge": text, "signature": serialize_signature(signature)},
    }


# --- 2: one challenge, one use, for its purpose only ---------------------------------------


async def test_one_challenge_creates_one_identity_whatever_keys_sign_it(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    text = await client.challenge()
    keys = [SigningKey.generate() for _ in range(8)]
    answers = await asyncio.gather(
        *(http.post("/api/v1/Identities", json=_creation(k, text)) for k in keys)
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [400] * 7, [a.text for a in answers]
    assert {code_of(a) for a in answers if a.status_code == 400} == {(400, USED)}
    # Used once: a ninth key later is refused too.
    late = await http.post("/api/v1/Identities", json=_creation(SigningKey.generate(), text))
    assert code_of(late) == (400, USED)


async def test_a_challenge_serves_only_its_purpose(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    owner = await client.create_identity_and_log_in(PASSWORD)
    # A device's challenge (createdBy set) does not create an identity.
    device_text = await client.challenge(owner.token)
    answer = await http.post(
        "/api/v1/Identities", json=_creation(SigningKey.generate(), device_text)
    )
    assert code_of(answer) == (400, INVALID_CHALLENGE)
    # Nor does text claiming another type.
    anonymous = json.loads(await client.challenge())
    claimed = json.dumps({**anonymous, "type": "Device"})
    answer = await http.post("/api/v1/Identities", json=_creation(SigningKey.generate(), claimed))
    assert code_of(answer) == (400, INVALID_CHALLENGE)
    # An anonymous challenge does not register a device.
    key = owner.identity.signing_key
    text = await client.challenge()
    body = {
        "devicePassword": PASSWORD,
        "signedChallenge": {
            "challenge": text,
            "signature": serialize_signature(key.sign(text.encode()).signature),
        },
    }
    headers = {"Authorization": f"Bearer {owner.token}"}
    answer = await http.post("/api/v1/Devices", json=body, headers=headers)
    assert code_of(answer) == (400, INVALID_CHALLENGE)


# --- 7: deeply nested challenge text ------------------------------------------------------


async def test_a_deeply_nested_challenge_is_a_400(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/api/v1/Identities", json=_creation(SigningKey.generate(), "[" * 999 + "]" * 999)
    )
    assert code_of(answer) == (400, INVALID_CHALLENGE)
