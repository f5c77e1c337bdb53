"""What hostile and malformed input broke (issue 19), each against the real stack: a test per
finding, failing before its fix."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from api.ratelimit import PER_ADDRESS, PER_PROTECTED_OBJECT
from api.server import HEADER_TIMEOUT_S
from api.stream_slots import MAX_STREAMS_PER_IDENTITY
from backbone.security.tokens import TokenIssuer
from connector.backbone_client import BackboneClient
from localproc.ports import free_port
from schemas.signatures import serialize_public_key, serialize_signature
from tests.integration.api_client import code_of
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack, stack_process

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


# --- 1: a stream or long poll ends with its credentials -----------------------------------


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _read_until_end(response: httpx.Response, within_s: float) -> str:
    """Everything a stream sends until the server ends it; fails if it is still open."""
    seen: list[str] = []

    async def read() -> None:
        async for chunk in response.aiter_text():
            seen.append(chunk)

    await asyncio.wait_for(read(), timeout=within_s)
    return "".join(seen)


async def test_streams_and_long_polls_end_when_the_device_is_deleted(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    first = await client.create_identity_and_log_in(PASSWORD)
    second = await client.add_device(first.identity, first.token, PASSWORD)
    second_token = await client.token(second.username, PASSWORD)
    headers = {**_bearer(first.token), "Accept": "text/event-stream"}
    async with (
        http.stream("GET", "/api/v1/Mailbox", headers=headers) as mailbox_stream,
        http.stream("GET", "/api/v2/sse", headers=_bearer(first.token)) as enmeshed_stream,
    ):
        long_poll = asyncio.create_task(
            http.get("/api/v1/Mailbox?since=1000000&wait=30", headers=_bearer(first.token))
        )
        await asyncio.sleep(0.5)  # all three are waiting
        deleted = await http.delete(
            f"/api/v1/Devices/{first.identity.device.id}", headers=_bearer(second_token)
        )
        assert deleted.status_code == 204, deleted.text
        mailbox_text = await _read_until_end(mailbox_stream, 10)
        enmeshed_text = await _read_until_end(enmeshed_stream, 10)
    # The device's own deletion is the last thing it would have seen: it is not delivered.
    assert "event: unauthorized" in mailbox_text and "DeviceDeleted" not in mailbox_text
    assert "event: unauthorized" in enmeshed_text and "ExternalEventCreated" not in enmeshed_text
    answer = await asyncio.wait_for(long_poll, 10)
    assert answer.status_code in (200, 401)  # nothing past 1000000; ended, not held 30 s
    assert answer.status_code == 401 or answer.json()["result"] == []


async def test_streams_and_long_polls_end_when_the_token_expires(
    client: BackboneClient, http: httpx.AsyncClient, stack: Stack
) -> None:
    party = await client.create_identity_and_log_in(PASSWORD)
    # A token of the stack's own issuer that lives two seconds (the real ones, 15 minutes).
    short, _ = TokenIssuer(stack.signing_seed, ttl_seconds=2).issue(
        party.identity.address, party.identity.device.id
    )
    started = time.monotonic()
    headers = {**_bearer(short), "Accept": "text/event-stream"}
    async with (
        http.stream("GET", "/api/v1/Mailbox", headers=headers) as mailbox_stream,
        http.stream("GET", "/api/v1/sse", headers=_bearer(short)) as enmeshed_stream,
    ):
        long_poll = await http.get("/api/v1/Mailbox?since=1000&wait=30", headers=_bearer(short))
        assert code_of(long_poll) == (401, "error.platform.unauthorized")
        assert "event: unauthorized" in await _read_until_end(mailbox_stream, 10)
        assert "event: unauthorized" in await _read_until_end(enmeshed_stream, 10)
    assert time.monotonic() - started < 10


async def test_one_identity_holds_a_bounded_number_of_streams(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    party = await client.create_identity_and_log_in(PASSWORD)
    headers = {**_bearer(party.token), "Accept": "text/event-stream"}
    async with contextlib.AsyncExitStack() as open_streams:
        for _ in range(MAX_STREAMS_PER_IDENTITY):
            stream = await open_streams.enter_async_context(
                http.stream("GET", "/api/v1/Mailbox", headers=headers)
            )
            assert stream.status_code == 200
        refused = await http.get("/api/v1/Mailbox", headers=headers)
        assert code_of(refused) == (429, "error.platform.tooManyRequests")
        assert refused.headers["Retry-After"]
        poll = await http.get("/api/v1/Mailbox?wait=1", headers=_bearer(party.token))
        assert poll.status_code == 429
        # Other identities are not affected.
        other = await client.create_identity_and_log_in(PASSWORD)
        assert (await http.get("/api/v1/Mailbox?wait=1", headers=_bearer(other.token))).is_success
    await asyncio.sleep(0.5)  # closed streams give their slots back
    assert (await http.get("/api/v1/Mailbox?wait=1", headers=_bearer(party.token))).is_success


# --- 6 and 10: indexes out of range, and a cursor past the head ----------------------------


async def test_indexes_out_of_range_are_400s(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    party = await client.create_identity_and_log_in(PASSWORD)
    auth = _bearer(party.token)
    too_big = str(2**63)
    invalid = (400, "error.platform.validation.invalidPropertyValue")
    for path in (
        f"/api/v1/Mailbox?since={too_big}",
        f"/api/v1/Datawallet/Modifications?localIndex={too_big}",
    ):
        assert code_of(await http.get(path, headers=auth)) == invalid, path
    # Sent as Latin-1 bytes, as a hostile client would (httpx encodes str headers as ASCII).
    raw_auth = {k.encode(): v.encode() for k, v in auth.items()}
    for last_event_id in (too_big.encode(), b"\xb2", b"1\xb2", b"-1"):
        resume = {**raw_auth, b"Last-Event-ID": last_event_id}
        answer = await http.get("/api/v1/Mailbox", headers=resume)
        assert code_of(answer) == invalid, last_event_id
        async with http.stream(
            "GET", "/api/v1/Mailbox", headers={**resume, b"Accept": b"text/event-stream"}
        ) as streamed:
            await streamed.aread()
            assert streamed.status_code == 400, last_event_id
    # An empty Last-Event-ID is no Last-Event-ID.
    assert (await http.get("/api/v1/Mailbox", headers={**auth, "Last-Event-ID": ""})).is_success
    answer = await http.put("/api/v1/Mailbox/Cursor", json={"index": 2**63}, headers=auth)
    assert code_of(answer) == invalid
    answer = await http.post(
        "/api/v1/Datawallet/Modifications",
        json={
            "localIndex": 2**63,
            "modifications": [{"objectIdentifier": "o", "collection": "c", "type": "Create"}],
        },
        headers=auth,
    )
    assert code_of(answer) == invalid
    # A Content-Length of unicode digits is refused, not a 500 (raw: httpx will not send it).
    host, port = str(http.base_url.host), int(http.base_url.port or 80)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/v1/Challenges HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] in (b"400", b"413"), status_line


async def test_the_cursor_cannot_pass_the_mailbox_head(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    party = await client.create_identity_and_log_in(PASSWORD)
    auth = _bearer(party.token)
    answer = await http.put("/api/v1/Mailbox/Cursor", json={"index": 1000}, headers=auth)
    assert code_of(answer) == (400, "error.platform.validation.invalidPropertyValue")
    assert (await http.get("/api/v1/Mailbox/Cursor", headers=auth)).json()["result"]["index"] == 0


# --- 4: a password-protected template admits only peers that know the password ------------


async def test_a_relationship_request_needs_the_templates_password(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    owner = await client.create_identity_and_log_in(PASSWORD)
    peer = await client.create_identity_and_log_in(PASSWORD)
    created = await http.post(
        "/api/v1/RelationshipTemplates",
        json={"content": "eA==", "password": "open sesame"},
        headers=_bearer(owner.token),
    )
    template_id = created.json()["result"]["id"]
    request = {"relationshipTemplateId": template_id, "creationContent": "eA=="}
    # As upstream: a peer that has not fetched the template with its password cannot use it.
    answer = await http.post("/api/v1/Relationships", json=request, headers=_bearer(peer.token))
    assert code_of(answer) == (404, "error.platform.recordNotFound")
    wrong = await http.get(
        f"/api/v1/RelationshipTemplates/{template_id}?password=guess",
        headers=_bearer(peer.token),
    )
    assert wrong.status_code == 403
    answer = await http.post("/api/v1/Relationships", json=request, headers=_bearer(peer.token))
    assert code_of(answer) == (404, "error.platform.recordNotFound")
    right = await http.get(
        f"/api/v1/RelationshipTemplates/{template_id}?password=open%20sesame",
        headers=_bearer(peer.token),
    )
    assert right.status_code == 200, right.text
    answer = await http.post("/api/v1/Relationships", json=request, headers=_bearer(peer.token))
    assert answer.status_code == 201, answer.text


# --- 3: failed password checks are limited across API replicas ----------------------------


def _from(address: str, base_url: str) -> httpx.AsyncClient:
    """A client whose connections come from another loopback address: the limits count per
    address, and the other tests' failures (from 127.0.0.1) must not count here."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30)


async def test_wrong_token_passwords_are_limited_across_replicas(
    client: BackboneClient, http: httpx.AsyncClient, stack: Stack
) -> None:
    owner = await client.create_identity_and_log_in(PASSWORD)
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"content": "eA==", "expiresAt": soon, "password": "right one"}
    created = await http.post("/api/v1/Tokens", json=body, headers=_bearer(owner.token))
    assert created.status_code == 201, created.text
    path = f"/api/v1/Tokens/{created.json()['result']['id']}"
    async with (
        _from("127.0.0.2", stack.base_url) as first,
        _from("127.0.0.2", stack.second_api()) as second,
    ):
        for n in range(PER_PROTECTED_OBJECT.limit):  # half on each replica
            answer = await (first if n % 2 else second).get(f"{path}?password=wrong{n}")
            assert answer.status_code == 403, answer.text
        await asyncio.sleep(0.5)  # the other replica's failures arrive through Kafka
        for replica in (first, second):
            answer = await replica.get(f"{path}?password=wrong")
            assert code_of(answer) == (429, "error.platform.tooManyRequests")
            assert 0 < int(answer.headers["Retry-After"]) <= PER_PROTECTED_OBJECT.window_s
            # Even the right password waits: the check comes before the Argon2 work.
            assert (await replica.get(f"{path}?password=right%20one")).status_code == 429
    # The token's own limit holds for every address (guessing from many addresses gains
    # nothing; upstream even locks such a token for good), its owner still reads it.
    assert (await http.get(f"{path}?password=right%20one")).status_code == 429
    assert (await http.get(path, headers=_bearer(owner.token))).status_code == 200


async def test_username_spraying_is_limited_per_address_across_replicas(
    stack: Stack,
) -> None:
    form = {
        "grant_type": "password",
        "password": "guess",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    async with (
        _from("127.0.0.3", stack.base_url) as first,
        _from("127.0.0.3", stack.second_api()) as second,
    ):
        for n in range(0, PER_ADDRESS.limit, 2):  # a new username each time, both replicas
            answers = await asyncio.gather(
                first.post("/connect/token", data={**form, "username": f"USR{n}"}),
                second.post("/connect/token", data={**form, "username": f"USR{n + 1}"}),
            )
            assert [a.status_code for a in answers] == [400, 400], [a.text for a in answers]
        await asyncio.sleep(0.5)
        for replica in (first, second):
            answer = await replica.post("/connect/token", data={**form, "username": "USRnew"})
            assert answer.status_code == 429, answer.text
            assert answer.json()["error"] == "too_many_failed_logins"
            assert int(answer.headers["Retry-After"]) > 0


# --- 9: the datawallet's version only moves up, to what the device supports ---------------


async def test_a_datawallet_upgrade_cannot_lock_every_device_out(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    me = await client.create_identity_and_log_in(PASSWORD)

    def supporting(version: int) -> dict[str, str]:
        return {**_bearer(me.token), "x-supported-datawallet-version": str(version)}

    run = await http.post(
        "/api/v1/SyncRuns", json={"type": "DatawalletVersionUpgrade"}, headers=supporting(2)
    )
    assert run.status_code == 201, run.text
    finalize = f"/api/v1/SyncRuns/{run.json()['result']['syncRun']['id']}"
    finalize += "/FinalizeDatawalletVersionUpgrade"
    insufficient = "error.platform.validation.datawallet.insufficientSupportedDatawalletVersion"
    # Far above what the device supports: refused (before, the datawallet was locked for good).
    answer = await http.put(finalize, json={"newDatawalletVersion": 999}, headers=supporting(2))
    assert code_of(answer) == (400, insufficient)
    assert (
        await http.put(finalize, json={"newDatawalletVersion": 2}, headers=supporting(2))
    ).is_success
    run = await http.post(
        "/api/v1/SyncRuns", json={"type": "DatawalletVersionUpgrade"}, headers=supporting(2)
    )
    finalize = f"/api/v1/SyncRuns/{run.json()['result']['syncRun']['id']}"
    finalize += "/FinalizeDatawalletVersionUpgrade"
    answer = await http.put(finalize, json={"newDatawalletVersion": 1}, headers=supporting(2))
    assert code_of(answer) == (400, "error.platform.validation.datawallet.cannotDowngrade")
    assert (await http.get("/api/v1/Datawallet", headers=supporting(2))).json()["result"] == {
        "version": 2
    }
    # Reading the modifications needs the version too, as writing them does.
    path = "/api/v1/Datawallet/Modifications"
    assert code_of(await http.get(path, headers=supporting(1))) == (400, insufficient)
    assert (await http.get(path, headers=supporting(2))).is_success


# --- 10: references and encodings that led nowhere ------------------------------------------


async def test_bad_references_and_mixed_base64_are_400s(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    me = await client.create_identity_and_log_in(PASSWORD)
    peer = await client.create_identity_and_log_in(PASSWORD)
    auth = _bearer(me.token)
    invalid = (400, "error.platform.validation.invalidPropertyValue")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for path, body in (
        ("/api/v1/RelationshipTemplates", {"content": "eA==", "forIdentity": "not an address"}),
        ("/api/v1/Tokens", {"content": "eA==", "expiresAt": soon, "forIdentity": "did:e:x"}),
        ("/api/v1/RelationshipTemplates", {"content": "ab-+cd=="}),  # two alphabets
        ("/api/v1/RelationshipTemplates", {"content": "ab_/cd=="}),
    ):
        assert code_of(await http.post(path, json=body, headers=auth)) == invalid, body
    # A real address is still fine, in either alphabet.
    for content in ("ab-_cd", "ab+/cd=="):
        body = {"content": content, "forIdentity": peer.identity.address}
        answer = await http.post("/api/v1/RelationshipTemplates", json=body, headers=auth)
        assert answer.status_code == 201, answer.text
    message = {
        "recipients": [{"address": peer.identity.address, "encryptedKey": "eA=="}],
        "body": "eA==",
        "attachments": [{"id": "FIL" + "x" * 17}],
    }
    answer = await http.post("/api/v1/Messages", json=message, headers=auth)
    assert code_of(answer) == invalid


# --- 5: slow and idle connections are closed ----------------------------------------------


async def _closed_after(stack: Stack, trickle: bool) -> float:
    """Seconds until the API closes a connection that sends its header a line every 2 s
    (`trickle`) or nothing at all."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.api_port)
    started = time.monotonic()

    async def send_slowly() -> None:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        for n in range(100):
            await asyncio.sleep(2)
            writer.write(f"X-Slow-{n}: y\r\n".encode())
            await writer.drain()

    sending = asyncio.create_task(send_slowly()) if trickle else None
    try:
        await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S + 10)  # b"" once closed
    finally:
        if sending is not None:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sending
        writer.close()
    return time.monotonic() - started


async def test_slow_headers_and_idle_sockets_are_closed(stack: Stack) -> None:
    trickled, idle = await asyncio.gather(_closed_after(stack, True), _closed_after(stack, False))
    assert trickled < HEADER_TIMEOUT_S + 3
    assert idle < HEADER_TIMEOUT_S + 3


# --- 8: concurrent uploads stay bounded and never fail other users --------------------------


def _file_form(data: bytes) -> dict[str, Any]:
    fields = {
        "cipherHash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "expiresAt": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    return {"data": fields, "files": {"content": ("blob", data, "application/octet-stream")}}


BIG_FILE = 10 * 1024 * 1024  # the production limit; the shared stack uses 1 MiB


@pytest.fixture(scope="module")
def big_files_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One more API process on the shared stack with the production file limit (10 MiB):
    the API is stateless, so it serves the same identities and files."""
    port = free_port()
    env = {**stack.env, "BACKBONE_MAX_FILE_BYTES": str(BIG_FILE), "BACKBONE_API_PORT": str(port)}
    api = stack_process(
        "api-big-files",
        [sys.executable, "-m", "backbone.cli", "api", "--port", str(port)],
        env,
        tmp_path_factory.mktemp("api-big-files"),
    )
    api.start()
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_api_ready(api, url)
        yield url
    finally:
        api.stop()


def _peak_rss_mib(url: str) -> float:
    """The API process's peak resident memory (VmHWM), found by its port."""
    port = url.rsplit(":", 1)[1]
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = status.read_bytes().split(b"\0")
            if b"api" in argv and b"--port" in argv and port.encode() in argv:
                for line in (status.parent / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
    raise LookupError(f"no API process on port {port}")


async def test_concurrent_uploads_are_bounded_and_do_not_fail_other_users(
    client: BackboneClient, big_files_api: str
) -> None:
    uploaders = [await client.create_identity_and_log_in(PASSWORD) for _ in range(4)]
    reader = await client.create_identity_and_log_in(PASSWORD)
    data = os.urandom(BIG_FILE)
    async with httpx.AsyncClient(base_url=big_files_api, timeout=120) as http:

        async def upload(who: Any) -> httpx.Response:
            return await http.post("/api/v1/Files", headers=_bearer(who.token), **_file_form(data))

        async def read_meanwhile() -> list[int]:
            statuses = []
            for _ in range(40):
                answer = await http.get("/api/v1/Identities/Self", headers=_bearer(reader.token))
                statuses.append(answer.status_code)
                await asyncio.sleep(0.1)
            return statuses

        uploads = asyncio.gather(*(upload(uploaders[n % 4]) for n in range(12)))
        answers, reads = await asyncio.gather(uploads, read_meanwhile())
    # Every upload is stored or told to come back (503 + Retry-After), none is a 500 ...
    for answer in answers:
        assert answer.status_code in (201, 503), answer.text
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) > 0
    assert sum(a.status_code == 201 for a in answers) >= 4
    # ... other identities' requests are served meanwhile, and memory stays bounded.
    assert set(reads) == {200}
    assert _peak_rss_mib(big_files_api) < 250


# --- 11: the OpenAPI document is the contract ---------------------------------------------


async def test_the_openapi_document_tells_the_truth(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "devicePassword"}
    assert "HTTPValidationError" not in json.dumps(spec)
    operations = [
        (path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
    ]
    for path, method, op in operations:
        responses = op["responses"]
        assert "503" in responses, (path, method)
        if path.startswith("/api/"):
            assert "400" in responses, (path, method)  # 429 only where a limit applies
            assert "security" in op, (path, method)
        for status, response in responses.items():
            for media, body in response.get("content", {}).items():
                assert body.get("schema"), (path, method, status, media)
                if status[0] in "45" and path != "/ready" and media == "application/json":
                    refs = [body["schema"], *body["schema"].get("anyOf", [])]
                    assert any(r.get("$ref", "").endswith("/Error") for r in refs)
    paths = spec["paths"]
    assert paths["/api/v1/Mailbox"]["get"]["security"] == [{"bearer": []}]
    assert {"201", "200"} <= set(paths["/api/v2/SyncRuns"]["post"]["responses"])
    assert "multipart/form-data" in paths["/api/v2/Files"]["post"]["requestBody"]["content"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in paths["/api/v2/sse"]["get"]["responses"]["200"]["content"]
    # Typed bodies where the answers are modelled (api/schemas.py); the fuzz run checks them.
    created = paths["/api/v2/Challenges"]["post"]["responses"]["201"]["content"]
    assert created["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Envelope_ChallengeOut_"
    }
    challenge = (await http.post("/api/v2/Challenges")).json()["result"]
    assert set(challenge) == set(spec["components"]["schemas"]["ChallengeOut"]["properties"])
    # A 405 names every method of the path, not only the first route's.
    answer = await http.delete("/api/v1/Mailbox/Cursor")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, PUT"
    # A path of its own next to a parametrized one: its methods, not the other's.
    answer = await http.delete("/api/v1/Devices/Self")
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"


async def test_the_first_device_reads_itself(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    """Found by the fuzz run: an identity's first device, created by no device, was a 500."""
    me = await client.create_identity_and_log_in(PASSWORD)
    answer = await http.get("/api/v2/Devices/Self", headers=_bearer(me.token))
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["createdByDevice"] is None
    # Strict types where lax parsing took anything: `false` is no index, `x` is no id.
    cursor = await http.put(
        "/api/v1/Mailbox/Cursor", json={"index": False}, headers=_bearer(me.token)
    )
    assert cursor.status_code == 400
    listed = await http.get("/api/v1/Messages?ids=x", headers=_bearer(me.token))
    assert listed.status_code == 400
