"""The Connector's calls to the backbone through a 503 or a cut connection: repeated with one
Idempotency-Key, so the backbone can answer a repeat with the first outcome."""

from __future__ import annotations

import httpx
import pytest

from connector.backbone_client import BackboneClient, BackboneError, DeviceSession


def _session(handler: httpx.MockTransport) -> DeviceSession:
    http = httpx.AsyncClient(base_url="http://backbone", transport=handler)
    session = DeviceSession(BackboneClient(http, "client", "secret"), "USRa", "password")
    session.FIRST_RETRY_S = 0.0
    session._token, session._expires_at = "token", float("inf")
    return session


def _unavailable() -> httpx.Response:
    return httpx.Response(
        503,
        headers={"Retry-After": "0"},
        json={"error": {"code": "error.platform.serviceUnavailable", "message": "down"}},
    )


async def test_a_write_is_repeated_with_the_same_key_until_it_is_answered() -> None:
    keys: list[str | None] = []
    answers = iter([_unavailable(), None, httpx.Response(201, json={"result": {"id": "MSGx"}})])

    def handle(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        answer = next(answers)
        if answer is None:
            raise httpx.ConnectError("cut", request=request)
        return answer

    sent = await _session(httpx.MockTransport(handle)).send_message(b"body", {"did:e:x": b"k"})
    assert sent == {"id": "MSGx"}
    assert len(keys) == 3 and keys[0] is not None and len(set(keys)) == 1


async def test_each_write_has_its_own_key_and_reads_none() -> None:
    keys: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(200, json={"result": {}})

    session = _session(httpx.MockTransport(handle))
    await session.send_message(b"one", {"did:e:x": b"k"})
    await session.send_message(b"two", {"did:e:x": b"k"})
    await session.message("MSGaaaaaaaaaaaaaaaaa")
    assert keys[0] and keys[1] and keys[0] != keys[1]
    assert keys[2] is None


async def test_the_repeats_are_bounded_and_the_last_answer_is_raised() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _unavailable()

    session = _session(httpx.MockTransport(handle))
    with pytest.raises(BackboneError) as failed:
        await session.send_message(b"body", {"did:e:x": b"k"})
    assert failed.value.status == 503
    assert calls == DeviceSession.RETRIES + 1


async def test_a_refusal_is_not_repeated() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"code": "error.x", "message": "no"}})

    with pytest.raises(BackboneError):
        await _session(httpx.MockTransport(handle)).send_message(b"body", {"did:e:x": b"k"})
    assert calls == 1
