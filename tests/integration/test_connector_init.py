"""`connector init` and `connector status` against a real backbone."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connector.backbone_client import BackboneClient
from connector.config import ConnectorSettings
from connector.identities import load_identities
from connector.keystore import Keystore
from connector.store import SqliteStore
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration


def _connector(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


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
    wrong = _connector({**env, "CONNECTOR_STORAGE_KEY": base64.b64encode(os.urandom(32)).decode()},
                       "status")  # fmt: skip
    assert wrong.returncode == 2 and "wrong CONNECTOR_STORAGE_KEY" in wrong.stderr
