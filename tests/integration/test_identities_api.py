"""Identities and devices through the real API, worker, Kafka and Cassandra."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from nacl.signing import SigningKey

from backbone.security.addresses import address_from_public_key
from backbone.security.challenges import ChallengeIssuer
from connector.backbone_client import BackboneClient, BackboneError, Identity
from schemas.signatures import serialize_public_key, serialize_signature
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration

PASSWORD = "a long enough password"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> BackboneClient:
    return BackboneClient(http, CLIENT_ID, CLIENT_SECRET)


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def _create_body(
    client: BackboneClient, key: SigningKey, signed: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "identityPublicKey": serialize_public_key(bytes(key.verify_key)),
        "identityVersion": 1,
        "devicePassword": PASSWORD,
        "signedChallenge": signed or await client.signed_challenge(key),
    }


async def test_identity_creation_login_and_read_your_writes(
    client: BackboneClient, stack: Stack
) -> None:
    key = SigningKey.generate()
    identity = await client.create_identity(PASSWORD, key)
    assert identity.address == address_from_public_key(bytes(key.verify_key), "localhost")
    # Logging in reads the projected device at once: success meant "readable now".
    token = await client.token(identity.device.username, PASSWORD)
    me = await client.me(token)
    assert me["address"] == identity.address
    assert me["clientId"] == CLIENT_ID
    assert me["publicKey"] == serialize_public_key(bytes(key.verify_key))
    devices = await client.devices(token)
    assert [d["id"] for d in devices] == [identity.device.id]


async def test_challenge_is_issued_signed_and_expiring(http: httpx.AsyncClient) -> None:
    answer = await http.post("/api/v1/Challenges")
    assert answer.status_code == 201
    dto = answer.json()["result"]
    assert dto["id"].startswith("CHL") and len(dto["id"]) == 20
    expires = datetime.fromisoformat(dto["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=5) < expires - datetime.now(UTC) <= timedelta(minutes=10)


async def test_signature_by_another_key_is_rejected(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    body = await _create_body(client, key, await client.signed_challenge(other))
    answer = await http.post("/api/v1/Identities", json=body)
    assert _error(answer) == (400, "error.platform.validation.device.invalidSignature")


async def test_altered_challenge_is_rejected(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    key = SigningKey.generate()
    text = await client.challenge()
    challenge = json.loads(text)
    challenge["expiresAt"] = "2099-01-01T00:00:00.000Z"  # a longer life than we were given
    forged = json.dumps(challenge, separators=(",", ":"))
    signed = {
        "challenge": forged,
        "signature": serialize_signature(key.sign(forged.encode()).signature),
    }
    answer = await http.post("/api/v1/Identities", json=await _create_body(client, key, signed))
    assert _error(answer) == (400, "error.platform.validation.device.invalidChallenge")


async def test_expired_challenge_is_rejected(
    client: BackboneClient, http: httpx.AsyncClient, stack: Stack
) -> None:
    key = SigningKey.generate()
    issuer = ChallengeIssuer(SigningKey(stack.signing_seed), ttl_seconds=60)
    old = issuer.issue(datetime.now(UTC) - timedelta(hours=1)).canonical_json()
    signed = {"challenge": old, "signature": _sign(key, old)}
    answer = await http.post("/api/v1/Identities", json=await _create_body(client, key, signed))
    assert _error(answer) == (400, "error.platform.validation.device.challengeHasExpired")


async def test_reused_challenge_and_duplicate_address_are_rejected(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    key = SigningKey.generate()
    body = await _create_body(client, key)
    assert (await http.post("/api/v1/Identities", json=body)).status_code == 201
    again = await http.post("/api/v1/Identities", json=body)
    assert _error(again) == (400, "error.platform.validation.device.challengeAlreadyUsed")
    fresh = await http.post("/api/v1/Identities", json=await _create_body(client, key))
    assert _error(fresh) == (400, "error.platform.validation.identity.addressAlreadyExists")


@pytest.mark.parametrize(
    "public_key",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b'{"pub":"AAAA","alg":3}').decode(),  # 3 bytes, not 32
        base64.urlsafe_b64encode(b'{"pub":"' + b"A" * 43 + b'","alg":1}').decode(),  # not Ed25519
    ],
)
async def test_malformed_public_key_is_rejected(
    client: BackboneClient, http: httpx.AsyncClient, public_key: str
) -> None:
    body = {**await _create_body(client, SigningKey.generate()), "identityPublicKey": public_key}
    answer = await http.post("/api/v1/Identities", json=body)
    assert _error(answer) == (400, "error.platform.validation.identity.invalidPublicKey")


async def test_bad_client_and_bad_input_get_clear_errors(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    body = await _create_body(client, SigningKey.generate())
    answer = await http.post("/api/v1/Identities", json={**body, "clientSecret": "wrong"})
    assert _error(answer) == (401, "invalid_client")
    answer = await http.post("/api/v1/Identities", json={**body, "devicePassword": "short"})
    assert _error(answer) == (400, "error.platform.validation.invalidPropertyValue")
    assert "devicePassword" in answer.json()["error"]["message"]
    answer = await http.post(
        "/api/v1/Identities", content=b"x" * 70_000, headers={"content-type": "application/json"}
    )
    assert _error(answer) == (413, "error.platform.requestTooLarge")
    answer = await http.get("/api/v1/Nothing")
    assert answer.status_code == 404 and "error" in answer.json()


async def test_wrong_passwords_get_one_answer_and_then_a_lock(
    client: BackboneClient,
) -> None:
    identity = await client.create_identity(PASSWORD)
    with pytest.raises(BackboneError) as unknown:
        await client.token("USRnobodyHasThisNam", PASSWORD)
    assert (unknown.value.status, unknown.value.code) == (400, "invalid_grant")
    for _ in range(5):  # BACKBONE_FAILED_LOGINS_MAX defaults to 5
        with pytest.raises(BackboneError) as wrong:
            await client.token(identity.device.username, "not the password")
        assert (wrong.value.status, wrong.value.code) == (400, "invalid_grant")
    with pytest.raises(BackboneError) as locked:
        await client.token(identity.device.username, PASSWORD)  # right, but locked now
    assert (locked.value.status, locked.value.code) == (429, "too_many_failed_logins")
    with pytest.raises(BackboneError) as bad_client:
        await BackboneClient(client.http, CLIENT_ID, "wrong secret").token("u", "p")
    assert bad_client.value.code == "invalid_client"


async def test_devices_are_added_listed_and_deleted_by_their_identity_only(
    client: BackboneClient, http: httpx.AsyncClient
) -> None:
    alice = await client.create_identity(PASSWORD)
    token = await client.token(alice.device.username, PASSWORD)
    second = await client.add_device(alice, token, "second device password")
    second_token = await client.token(second.username, second.password)
    assert {d["id"] for d in await client.devices(second_token)} == {alice.device.id, second.id}

    # A device cannot delete itself; an unknown device is not found.
    answer = await http.delete(f"/api/v1/Devices/{second.id}", headers=_auth(second_token))
    assert _error(answer) == (400, "error.platform.validation.device.deviceCannotDeleteItself")
    answer = await http.delete("/api/v1/Devices/DVCaaaaaaaaaaaaaaaaa", headers=_auth(token))
    assert _error(answer) == (404, "error.platform.recordNotFound")

    # Another identity sees none of alice's devices and cannot delete them.
    bob = await client.create_identity(PASSWORD)
    bob_token = await client.token(bob.device.username, PASSWORD)
    assert [d["id"] for d in await client.devices(bob_token)] == [bob.device.id]
    answer = await http.delete(f"/api/v1/Devices/{second.id}", headers=_auth(bob_token))
    assert _error(answer) == (404, "error.platform.recordNotFound")

    # Adding a device needs a challenge signed by the identity key, used once.
    stolen: Identity = Identity(alice.address, SigningKey.generate(), alice.device)
    with pytest.raises(BackboneError) as forged:
        await client.add_device(stolen, token, "third device password")
    assert forged.value.code == "error.platform.validation.device.invalidSignature"
    signed = await client.signed_challenge(alice.signing_key, token)
    body = {"devicePassword": "third device password", "signedChallenge": signed}
    assert (await http.post("/api/v1/Devices", json=body, headers=_auth(token))).status_code == 201
    answer = await http.post("/api/v1/Devices", json=body, headers=_auth(token))
    assert _error(answer) == (400, "error.platform.validation.device.challengeAlreadyUsed")

    # Deleting the first device ends its tokens and its logins at once.
    await client.delete_device(second_token, alice.device.id)
    assert alice.device.id not in {d["id"] for d in await client.devices(second_token)}
    answer = await http.get("/api/v1/Identities/Self", headers=_auth(token))
    assert _error(answer) == (401, "error.platform.unauthorized")
    with pytest.raises(BackboneError) as gone:
        await client.token(alice.device.username, PASSWORD)
    assert gone.value.code == "invalid_grant"


async def test_requests_without_a_valid_token_are_refused(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer forged.token"}, {"Authorization": "Basic x"}):
        answer = await http.get("/api/v1/Devices", headers=headers)
        assert _error(answer) == (401, "error.platform.unauthorized")


async def test_operations_endpoints(client: BackboneClient, http: httpx.AsyncClient) -> None:
    await client.create_identity(PASSWORD)
    assert (await http.get("/health")).json() == {"status": "ok"}
    ready = await http.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"kafka": "ok", "cassandra": "ok"}
    metrics = (await http.get("/metrics")).text
    assert 'backbone_api_commands_total{command="CreateIdentity",outcome="ok"}' in metrics
    assert 'route="/api/v1/Identities"' in metrics
    spec = (await http.get("/openapi.json")).json()
    assert {"/api/v1/Challenges", "/api/v1/Identities", "/api/v1/Devices", "/connect/token"} <= set(
        spec["paths"]
    )


async def test_no_plaintext_on_the_log(client: BackboneClient, stack: Stack) -> None:
    key = SigningKey.generate()
    identity = await client.create_identity(PASSWORD, key)
    token = await client.token(identity.device.username, PASSWORD)
    device = await client.add_device(identity, token, "second device password")
    secrets = [
        identity.address.encode(),
        identity.address.rsplit(":", 1)[1].encode(),
        identity.device.username.encode(),
        identity.device.id.encode(),
        device.username.encode(),
        bytes(key.verify_key),
        base64.urlsafe_b64encode(bytes(key.verify_key)).rstrip(b"="),
        b"argon2id",
        PASSWORD.encode(),
    ]
    records = await _every_record(stack)
    assert len(records) > 10  # commands, events, replies and table changelogs were read
    for raw in records:
        for secret in secrets:
            assert secret not in raw


async def test_logs_are_json_lines_without_secrets(client: BackboneClient, stack: Stack) -> None:
    identity = await client.create_identity(PASSWORD)
    token = await client.token(identity.device.username, PASSWORD)
    await client.me(token)
    secrets = [PASSWORD, token, CLIENT_SECRET, stack.master_key_b64, "argon2id"]
    for process in (stack.api, stack.worker):
        lines = process.log_file.read_text().splitlines()
        assert lines, process.name
        for line in lines:
            entry = json.loads(line)  # every line is one JSON object
            assert {"time", "level", "logger", "message"} <= entry.keys()
            for secret in secrets:
                assert secret not in line, (process.name, line)
    requests = [json.loads(x) for x in stack.api.log_file.read_text().splitlines()]
    assert any(r.get("route") == "/api/v1/Identities" and r.get("status") == 201 for r in requests)


async def test_a_worker_restart_keeps_decider_state_and_answers_503_meanwhile(
    client: BackboneClient, http: httpx.AsyncClient, stack: Stack
) -> None:
    """Runs last in this module: it stops and starts the shared worker."""
    before = await client.create_identity(PASSWORD)
    token = await client.token(before.device.username, PASSWORD)
    stack.worker.stop()
    try:
        waiting_key = SigningKey.generate()
        answer = await http.post("/api/v1/Identities", json=await _create_body(client, waiting_key))
        # No worker: the command is on the log but its outcome is unknown. Say so.
        assert _error(answer) == (503, "error.platform.serviceUnavailable")
        assert int(answer.headers["Retry-After"]) > 0
    finally:
        stack.start_worker()
    # The identity from before the restart is still known to the decider ...
    again = await http.post(
        "/api/v1/Identities", json=await _create_body(client, before.signing_key)
    )
    assert _error(again) == (400, "error.platform.validation.identity.addressAlreadyExists")
    # ... its data key too (new events of it are sealed and projected) ...
    await client.add_device(before, token, "a device after the restart")
    # ... and the command that waited during the restart was decided after it.
    late = await http.post("/api/v1/Identities", json=await _create_body(client, waiting_key))
    assert _error(late) == (400, "error.platform.validation.identity.addressAlreadyExists")


def _sign(key: SigningKey, text: str) -> str:
    return serialize_signature(key.sign(text.encode()).signature)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _every_record(stack: Stack) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.cluster.kafka_bootstrap)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        topics = [t for t in cluster.topics() if t.startswith(stack.cluster.topic_prefix)]
        partitions = [
            TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[bytes] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    out.append((record.key or b"") + (record.value or b""))
                    out.extend(value for _, value in record.headers)
        return out
    finally:
        await consumer.stop()
