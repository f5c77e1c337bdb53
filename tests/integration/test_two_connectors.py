"""Two organizations' Connectors (`connector serve` processes) against the real backbone:
they become contacts through a token, exchange messages both ways, A's webhook receiver
hears of each event once, B catches up on 100 messages sent while it was down, and neither
Kafka nor Cassandra ever holds the plaintext or a key."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from cassandra.cluster import Session

from connector.crypto import decode_reference
from connector.identities import load_identities
from connector.keystore import Keystore
from connector.store import SqliteStore
from connector.webhooks import verify_signature
from localproc.ports import free_port
from store.topics import TopicNames, read_records
from tests.integration.log_access import operator_codec
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack, stack_process

pytestmark = pytest.mark.integration

API_KEY = "test-api-key-" + "x" * 24
HOOK_SECRET = secrets.token_hex(16)


class Hooks:
    """A business system's webhook receiver: records what arrives, checks signatures."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp, signed = (
                    self.headers["X-Connector-Timestamp"],
                    self.headers["X-Connector-Signature"],
                )
                ok = verify_signature(HOOK_SECRET.encode(), stamp, body, signed, time.time())
                if ok:
                    hooks.events.append(json.loads(body))
                else:
                    hooks.bad_signatures += 1
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


class Org:
    """One organization: a data directory, `connector init` done, `connector serve` on demand."""

    def __init__(self, name: str, stack: Stack, workdir: Path, webhooks: str = "") -> None:
        self.storage_key = os.urandom(32)
        self.port = free_port()
        self.data_dir = workdir / name
        self.env = {
            **os.environ,
            "CONNECTOR_DATA_DIR": str(self.data_dir),
            "CONNECTOR_BACKBONE_URL": stack.base_url,
            "CONNECTOR_CLIENT_ID": CLIENT_ID,
            "CONNECTOR_CLIENT_SECRET": CLIENT_SECRET,
            "CONNECTOR_STORAGE_KEY": base64.b64encode(self.storage_key).decode(),
            "CONNECTOR_API_KEY": API_KEY,
            "CONNECTOR_PORT": str(self.port),
            "CONNECTOR_WEBHOOKS": webhooks,
        }
        init = subprocess.run(
            [sys.executable, "-m", "connector.cli", "init"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert init.returncode == 0, init.stderr
        self.address = init.stdout.split()[2]
        cli = [sys.executable, "-m", "connector.cli", "serve"]
        self.process = stack_process(f"connector-{name}", cli, self.env, workdir)
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=30, headers={"X-API-KEY": API_KEY}
        )

    async def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + 60
        while True:
            self.process.check_alive()
            try:
                if (await self.http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.process.log_tail()
            await asyncio.sleep(0.1)

    async def call(self, method: str, path: str, want: int = 200, **kw: Any) -> Any:
        answer = await self.http.request(method, path, **kw)
        assert answer.status_code == want, answer.text
        return answer.json().get("result")


async def _until(what: Callable[[], Any], within_s: float = 60) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        found = await what()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.server.shutdown()


async def test_two_connectors_become_contacts_and_exchange_messages(
    stack: Stack, tmp_path: Path, hooks: Hooks, cassandra_session: Session
) -> None:
    marker = secrets.token_hex(8)  # in every plaintext: searched for in Kafka and Cassandra
    target = json.dumps([{"url": hooks.url, "secret": HOOK_SECRET, "name": "erp"}])
    a, b = Org("a", stack, tmp_path, target), Org("b", stack, tmp_path)
    await a.start()
    await b.start()
    try:
        # A publishes a template as a token; B loads it by the reference (the QR code).
        template = await a.call(
            "POST",
            "/api/v2/RelationshipTemplates/Own",
            201,
            json={"content": {"welcome": f"A's offer {marker}"}},
        )
        token = await a.call(
            "POST", f"/api/v2/RelationshipTemplates/Own/{template['id']}/Token", 201
        )
        loaded = await b.call(
            "POST", "/api/v2/Peer/Load", 201, json={"reference": token["reference"]}
        )
        assert loaded["id"] == template["id"] and loaded["createdBy"] == a.address
        assert loaded["content"] == {"welcome": f"A's offer {marker}"}
        request = await b.call(
            "POST",
            "/api/v2/Relationships",
            201,
            json={"templateId": template["id"], "creationContent": {"hi": f"B asks {marker}"}},
        )
        assert request["status"] == "Pending"

        # A sees the request (mailbox -> decrypted with the template key) and accepts.
        async def a_sees_request() -> Any:
            found = await a.call("GET", "/api/v2/Relationships?status=Pending")
            return found[0] if found else None

        incoming = await _until(a_sees_request)
        assert incoming["id"] == request["id"] and incoming["peer"] == b.address
        assert incoming["creationContent"] == {"hi": f"B asks {marker}"}
        accepted = await a.call(
            "PUT",
            f"/api/v2/Relationships/{incoming['id']}/Accept",
            json={"content": {"ok": marker}},
        )
        assert accepted["status"] == "Active"

        async def b_sees_active() -> Any:
            r = await b.call("GET", f"/api/v2/Relationships/{request['id']}")
            return r if r["status"] == "Active" and r["responseContent"] else None

        assert (await _until(b_sees_active))["responseContent"] == {"ok": marker}

        # Messages both ways, plaintext in and out.
        for sender, to, text in ((a, b, f"A->B {marker}"), (b, a, f"B->A {marker}")):
            body = {"recipients": [to.address], "content": {"text": text}}
            await sender.call("POST", "/api/v2/Messages", 201, json=body)

        async def incoming_of(org: Org, n: int) -> Any:
            got = await org.call("GET", "/api/v2/Messages?direction=incoming&limit=1000")
            return got if len(got) >= n else None

        [to_b] = await _until(lambda: incoming_of(b, 1))
        [to_a] = await _until(lambda: incoming_of(a, 1))
        assert to_b["content"] == {"text": f"A->B {marker}"} and to_b["createdBy"] == a.address
        assert to_a["content"] == {"text": f"B->A {marker}"} and to_a["createdBy"] == b.address
        # A file, attached to a message: B gets the name and the exact bytes.
        document = f"%PDF-1.7 contract {marker} ".encode() * 1000
        expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        pdf = {"file": ("contract.pdf", document, "application/pdf")}
        uploaded = await a.call(
            "POST", "/api/v2/Files/Own", 201, data={"expiresAt": expires}, files=pdf
        )
        assert uploaded["name"] == "contract.pdf" and uploaded["size"] == len(document)
        body = {
            "recipients": [b.address],
            "content": {"text": "see attached"},
            "attachments": [uploaded["id"]],
        }
        await a.call("POST", "/api/v2/Messages", 201, json=body)
        with_file = (await _until(lambda: incoming_of(b, 2)))[1]
        assert with_file["attachments"] == [uploaded["id"]]
        download = await b.http.get(f"/api/v2/Files/{uploaded['id']}/Download")
        assert download.status_code == 200 and download.content == document
        assert download.headers["content-type"] == "application/pdf"
        assert "contract.pdf" in download.headers["content-disposition"]

        with_b = await a.call("GET", f"/api/v2/Messages?peer={b.address}")
        assert [m["direction"] for m in with_b] == ["outgoing", "incoming", "outgoing"]
        assert await a.call("GET", "/api/v2/Messages?peer=did:e:localhost:dids:nobody") == []

        # A's webhook receiver heard of each event once, signed.
        await _until(lambda: _ready(len(hooks.of_type("MessageReceived")) >= 1))
        await asyncio.sleep(1.0)  # anything sent twice would arrive by now
        assert [e["data"]["id"] for e in hooks.of_type("RelationshipRequested")] == [request["id"]]
        assert [e["data"]["status"] for e in hooks.of_type("RelationshipChanged")] == ["Active"]
        assert [e["data"]["content"] for e in hooks.of_type("MessageReceived")] == [
            {"text": f"B->A {marker}"}
        ]
        assert len({e["id"] for e in hooks.events}) == len(hooks.events) == 3
        assert hooks.bad_signatures == 0

        # B goes down; A sends 100; B comes back and receives all 100, in order.
        b.process.stop()
        for n in range(100):
            await a.call(
                "POST",
                "/api/v2/Messages",
                201,
                json={"recipients": [b.address], "content": {"n": n}},
            )
        await b.start()
        # "Sync now" races the live stream for the same entries: each is still handled once.
        synced = await b.call("POST", "/api/v2/Account/Sync")
        got = await _until(lambda: incoming_of(b, 102), within_s=120)
        assert [m["content"]["n"] for m in got[2:]] == list(range(100))
        assert len({m["id"] for m in got}) == 102
        assert 0 <= synced["handledEntries"] <= 100 + 2  # the messages and their relationship
        assert (await b.call("POST", "/api/v2/Account/Sync"))["handledEntries"] == 0
    finally:
        a.process.stop()
        b.process.stop()
        await a.http.aclose()
        await b.http.aclose()

    # Zero knowledge: no plaintext and no key in any Kafka record (opened with the operator's
    # master key, as a replay tool would) or any Cassandra row of this run.
    keys = _secrets_of(a) + _secrets_of(b) + [decode_reference(token["reference"])[1]]
    await _assert_nowhere(stack, cassandra_session, marker.encode(), keys)


async def _ready(value: bool) -> bool:
    return value


def _secrets_of(org: Org) -> list[bytes]:
    store = SqliteStore(org.data_dir / "connector.sqlite")
    keystore = Keystore(org.storage_key)
    [identity] = load_identities(store, keystore)
    found = [identity.keys.to_bytes()[:32], identity.keys.to_bytes()[32:]]
    for row in store.database.rows("SELECT id, sealed_key FROM templates"):
        found.append(keystore.open(row.sealed_key, f"template:{row.id}"))
    for row in store.database.rows("SELECT id, sealed_key FROM files"):
        found.append(keystore.open(row.sealed_key, f"file:{row.id}"))
    for row in store.database.rows("SELECT id, sealed_secret FROM relationships"):
        found.append(keystore.open(row.sealed_secret, f"secret:{row.id}"))
    store.close()
    return found


def _forms(secret: bytes) -> list[bytes]:
    return [
        secret,
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        secret.hex().encode(),
    ]


async def _assert_nowhere(stack: Stack, session: Session, marker: bytes, keys: list[bytes]) -> None:
    cluster = stack.cluster
    needles = [marker, *(form for key in keys for form in _forms(key))]
    codec = await operator_codec(stack)
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.kafka_bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(cluster.topic_prefix)]
    finally:
        await admin.close()
    assert TopicNames(cluster.topic_prefix).events in topics
    seen = opened = 0
    for topic in topics:
        for key, value in await read_records(cluster.kafka_bootstrap, topic):
            texts = [key or b"", value or b""]
            # Changelog records are not envelopes; those do not open, and are searched raw.
            with contextlib.suppress(Exception):
                texts.append(json.dumps(codec.open(value or b"").body, default=str).encode())
                opened += 1
            for text in texts:
                seen += 1
                assert not any(n in text for n in needles), f"found in {topic}"
    tables = [
        r.table_name
        for r in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (cluster.keyspace,),
        )
    ]
    for table in tables:
        # A whole-table scan: other tests leave megabytes of file chunks in the shared
        # keyspace, more than the driver's 10 s default lets a page take on a busy machine.
        for row in session.execute(f"SELECT * FROM {table}", timeout=120):  # noqa: S608
            text = repr(tuple(row)).encode() + b"".join(v for v in row if isinstance(v, bytes))
            for value in row:
                if isinstance(value, bytes):
                    text += base64.b64encode(value)
            seen += 1
            assert not any(n in text for n in needles), f"found in Cassandra table {table}"
    assert seen > 100 and opened > 100  # the search did look into the run's records


async def test_the_connector_api_refuses_bad_input_with_codes(stack: Stack, tmp_path: Path) -> None:
    org = Org("c", stack, tmp_path)
    await org.start()
    try:
        for headers in ({"X-API-KEY": "wrong"}, {"X-API-KEY": ""}):
            answer = await org.http.get("/api/v2/Relationships", headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "error.connector.unauthorized"
        stranger = "did:e:localhost:dids:0123456789abcdef012345"
        big = {"text": "x" * 30_000}
        cases: list[tuple[str, str, Any, int, str]] = [
            (
                "POST",
                "/api/v2/Messages",
                {"recipients": [], "content": 1},
                400,
                "error.platform.validation.invalidPropertyValue",
            ),
            (
                "POST",
                "/api/v2/Messages",
                {"recipients": [stranger], "content": 1},
                400,
                "error.connector.noActiveRelationship",
            ),
            (
                "POST",
                "/api/v2/Messages",
                {"recipients": [stranger, stranger], "content": 1},
                400,
                "error.connector.invalidRecipients",
            ),
            (
                "POST",
                "/api/v2/RelationshipTemplates/Own",
                {"content": big},
                400,
                "error.connector.contentTooLarge",
            ),
            (
                "POST",
                "/api/v2/RelationshipTemplates/Own",
                {"content": 1, "maxNumberOfAllocations": 0},
                400,
                "error.platform.validation.invalidPropertyValue",
            ),
            (
                "POST",
                "/api/v2/Peer/Load",
                {"reference": "not a reference at all"},
                400,
                "error.connector.invalidReference",
            ),
            (
                "POST",
                "/api/v2/Peer/Load",
                {"reference": "TOKaaaaaaaaaaaaaaaaa.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                404,
                "error.platform.recordNotFound",
            ),
            (
                "POST",
                "/api/v2/Relationships",
                {"templateId": "RLTaaaaaaaaaaaaaaaaa", "creationContent": 1},
                404,
                "error.connector.templateNotFound",
            ),
            (
                "GET",
                "/api/v2/Relationships/RELaaaaaaaaaaaaaaaaa",
                None,
                404,
                "error.connector.relationshipNotFound",
            ),
            (
                "GET",
                "/api/v2/Relationships/nope",
                None,
                400,
                "error.platform.validation.invalidPropertyValue",
            ),
            (
                "PUT",
                "/api/v2/Relationships/RELaaaaaaaaaaaaaaaaa/Dance",
                None,
                400,
                "error.connector.unknownStep",
            ),
            (
                "GET",
                "/api/v2/Messages?limit=1001",
                None,
                400,
                "error.platform.validation.invalidPropertyValue",
            ),
            (
                "GET",
                "/api/v2/Messages?direction=sideways",
                None,
                400,
                "error.platform.validation.invalidPropertyValue",
            ),
            (
                "GET",
                "/api/v2/Messages/MSGaaaaaaaaaaaaaaaaa",
                None,
                404,
                "error.connector.messageNotFound",
            ),
            (
                "POST",
                "/api/v2/RelationshipTemplates/Own/RLTaaaaaaaaaaaaaaaaa/Token",
                None,
                404,
                "error.connector.templateNotFound",
            ),
        ]
        for method, path, body, status, code in cases:
            answer = await org.http.request(method, path, json=body)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (
                method,
                path,
                answer.text,
            )
        # Nothing half-written: the refused template left no row behind.
        assert await org.call("GET", "/api/v2/RelationshipTemplates") == []
    finally:
        org.process.stop()
        await org.http.aclose()


def test_serve_refuses_to_start_without_a_strong_api_key_or_with_bad_webhooks(
    stack: Stack, tmp_path: Path
) -> None:
    org = Org("d", stack, tmp_path)
    serve = [sys.executable, "-m", "connector.cli", "serve"]
    for env, says in (
        ({"CONNECTOR_API_KEY": "short"}, "CONNECTOR_API_KEY"),
        ({"CONNECTOR_WEBHOOKS": '[{"url": "ftp://x", "secret": "s"}]'}, "CONNECTOR_WEBHOOKS"),
    ):
        run = subprocess.run(
            serve, env={**org.env, **env}, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 2 and says in run.stderr, run.stderr
