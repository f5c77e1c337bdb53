"""`/api/v1/Files`: upload (multipart, as Enmeshed's), metadata and content by id, limits,
expiry; the bytes come back exactly, and only while the file lives."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.api_client import new_party
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

LIMIT = 1024 * 1024  # BACKBONE_MAX_FILE_BYTES in tests/integration/stack.py


def _form(data: bytes, expires_in: timedelta = timedelta(days=1), **extra: str) -> dict[str, Any]:
    fields = {
        "cipherHash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "expiresAt": (datetime.now(UTC) + expires_in).isoformat(),
        **extra,
    }
    return {"data": fields, "files": {"content": ("blob", data, "application/octet-stream")}}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


async def test_a_file_round_trips_byte_for_byte_to_whoever_holds_its_id(
    http: httpx.AsyncClient,
) -> None:
    owner, other = await new_party(http), await new_party(http)
    data = os.urandom(LIMIT)  # four chunks exactly
    props = base64.b64encode(b"sealed name and type").decode()
    up = await http.post(
        "/api/v1/Files", headers=owner.headers, **_form(data, encryptedProperties=props)
    )
    assert up.status_code == 201, up.text
    created = up.json()["result"]
    assert created["id"].startswith("FIL") and created["cipherSize"] == LIMIT
    for reader in (owner, other):
        meta = await http.get(f"/api/v1/Files/{created['id']}", headers=reader.headers)
        assert meta.status_code == 200
        assert meta.json()["result"]["createdBy"] == owner.address
        assert meta.json()["result"]["encryptedProperties"] == props
        content = await http.get(f"/api/v1/Files/{created['id']}/Content", headers=reader.headers)
        assert content.status_code == 200 and content.content == data
    anonymous = await http.get(f"/api/v1/Files/{created['id']}/Content")
    assert anonymous.status_code == 401
    unknown = await http.get("/api/v1/Files/FILaaaaaaaaaaaaaaaaa", headers=owner.headers)
    assert unknown.status_code == 404


async def test_file_limits_are_refused_with_codes(http: httpx.AsyncClient) -> None:
    me = await new_party(http)
    small = b"ciphertext"

    async def code_of(**request: Any) -> tuple[int, str]:
        answer = await http.post("/api/v1/Files", headers=me.headers, **request)
        return answer.status_code, answer.json()["error"]["code"]

    invalid = "error.platform.validation.invalidPropertyValue"
    too_large = "error.platform.validation.file.contentTooLarge"
    assert await code_of(**_form(os.urandom(LIMIT + 1))) == (400, too_large)
    assert (await code_of(**_form(os.urandom(2 * LIMIT))))[0] == 413
    assert await code_of(**_form(b"")) == (400, invalid)
    assert await code_of(**_form(small, expires_in=timedelta(seconds=-5))) == (400, invalid)
    no_hash = _form(small)
    del no_hash["data"]["cipherHash"]
    assert await code_of(**no_hash) == (400, invalid)
    assert await code_of(**_form(small, expiresAt="tomorrow")) == (400, invalid)
    assert await code_of(**_form(small, encryptedProperties="%%%")) == (400, invalid)
    assert await code_of(data={"cipherHash": "eA=="}) == (400, invalid)  # no file part

    async def chunked() -> AsyncIterator[bytes]:
        yield b"x" * 100

    answer = await http.post("/api/v1/Files", headers=me.headers, content=chunked())
    assert answer.status_code == 411


async def test_an_expired_file_is_gone(http: httpx.AsyncClient) -> None:
    me = await new_party(http)
    up = await http.post(
        "/api/v1/Files",
        headers=me.headers,
        **_form(b"short-lived", expires_in=timedelta(seconds=3)),
    )
    file_id = up.json()["result"]["id"]
    assert (await http.get(f"/api/v1/Files/{file_id}", headers=me.headers)).status_code == 200
    await asyncio.sleep(4)
    for path in (f"/api/v1/Files/{file_id}", f"/api/v1/Files/{file_id}/Content"):
        assert (await http.get(path, headers=me.headers)).status_code == 404
