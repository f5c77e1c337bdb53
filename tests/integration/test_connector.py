"""The Connector against a real backbone: init, status, and the mailbox consumer."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connector.backbone_client import BackboneClient
from connector.config import ConnectorSettings
from connector.identities import create_identity, load_identities
from connector.keystore import Keystore
from connector.mailbox_consumer import MailboxConsumer
from connector.store import SqliteStore
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration


def _connector(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_init_creates_an_identity_whose_keys_are_sealed_at_rest(
    stack: Stack, tmp_path: Path
) -> None:
    storage_key = os.urandom(32)
    env = {
        **os.environ,
        "CONNECTOR_DATA_DIR": str(tmp_path / "org"),
        "CONNECTOR_BACKBONE_URL": stack.base_url,
        "CONNECTOR_CLIENT_ID": CLIENT_ID,
        "CONNECTOR_CLIENT_SECRET": CLIENT_SECRET,
        "CONNECTOR_STORAGE_KEY": base64.b64encode(storage_key).decode(),
    }
    created = _connector(env, "init")
    assert created.returncode == 0, created.stderr
    address = created.stdout.split()[2]
    assert address.startswith("did:e:localhost:dids:")
    again = _connector(env, "init")
    assert again.returncode == 1 and "already" in again.stderr
    status = _connector(env, "status")
    assert status.returncode == 0 and address in status.stdout

    settings = ConnectorSettings(tmp_path / "org", stack.base_url, CLIENT_ID, CLIENT_SECRET)
    [identity] = load_identities(SqliteStore(settings.database), Keystore(storage_key))
    assert identity.address == address
    # The stored device credentials work against the backbone ...
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        client = BackboneClient(http, CLIENT_ID, CLIENT_SECRET)
        token = await client.token(identity.username, identity.password)
        assert (await client.me(token))["address"] == address
    # ... and the database file holds none of the secrets in clear.
    raw = settings.database.read_bytes() + b"".join(
        p.read_bytes() for p in settings.data_dir.iterdir() if p.is_file()
    )
    assert identity.keys.to_bytes()[:32] not in raw
    assert identity.keys.to_bytes()[32:] not in raw
    assert identity.password.encode() not in raw
    wrong = _connector(
        {**env, "CONNECTOR_STORAGE_KEY": base64.b64encode(os.urandom(32)).decode()}, "status"
    )
    assert wrong.returncode == 2 and "wrong CONNECTOR_STORAGE_KEY" in wrong.stderr


async def test_the_mailbox_consumer_handles_each_entry_once_across_restarts(
    stack: Stack, tmp_path: Path
) -> None:
    settings = ConnectorSettings(tmp_path / "org", stack.base_url, CLIENT_ID, CLIENT_SECRET)
    store, keystore = SqliteStore(settings.database), Keystore(os.urandom(32))
    org = await create_identity(settings, store, keystore)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        client = BackboneClient(http, CLIENT_ID, CLIENT_SECRET)
        peer = await client.create_identity_and_log_in("peer password 123")
        peer_auth = peer.headers

        async def org_token() -> str:
            return await client.token(org.username, org.password)

        org_auth = {"Authorization": f"Bearer {await org_token()}"}
        template = await http.post(
            "/api/v1/RelationshipTemplates", json={"content": "eA=="}, headers=org_auth
        )
        template_id = template.json()["result"]["id"]
        body = {"relationshipTemplateId": template_id, "creationContent": "eA=="}
        rel = (await http.post("/api/v1/Relationships", json=body, headers=peer_auth)).json()
        await http.put(f"/api/v1/Relationships/{rel['result']['id']}/Accept", headers=org_auth)

        async def send(n: int) -> None:
            for i in range(n):
                text = base64.b64encode(f"m{i}".encode()).decode()
                message = {
                    "recipients": [{"address": org.address, "encryptedKey": "a2V5"}],
                    "body": text,
                }
                sent = await http.post("/api/v1/Messages", json=message, headers=peer_auth)
                assert sent.status_code == 201

        seen: list[int] = []
        received: list[str] = []
        enough = asyncio.Event()
        wanted = [0]

        async def handle(entry: dict[str, object]) -> None:
            seen.append(int(str(entry["index"])))
            if entry["type"] == "MessageReceived":
                received.append(str(entry["index"]))
                if len(received) >= wanted[0]:
                    enough.set()

        async def consume_until(messages: int) -> None:
            wanted[0] = messages
            enough.clear()
            consumer = MailboxConsumer(http, org.address, org_token, store, handle, ack_every=1)
            task = asyncio.create_task(consumer.run())
            await asyncio.wait_for(enough.wait(), 60)
            task.cancel()  # the Connector stops
            await asyncio.gather(task, return_exceptions=True)

        await send(5)
        await consume_until(5)
        first_run = list(seen)
        assert first_run == list(range(1, len(first_run) + 1))  # in order, no gap
        await send(10)  # while the Connector is down
        await consume_until(15)
        # The second run resumed after the first one's cursor: nothing handled twice.
        assert seen == list(range(1, len(seen) + 1))
        assert store.cursor(org.address) == seen[-1]
        cursors = await http.get("/api/v1/Mailbox/Cursor", headers=org_auth)
        assert cursors.json()["result"]["index"] >= first_run[-1]
