"""The Connector's command line and settings, without a backbone: what a newcomer meets
first (issue 20). Keys are never overwritten and never readable by others, a refusal
touches nothing, and every missing or wrong setting is named."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from connector import cli
from connector.api import create_app
from connector.backbone_client import BackboneError
from connector.config import ConnectorSettings, SettingsError
from connector.keystore import Keystore, KeystoreError, private_database
from connector.mailbox_consumer import drop_reason
from connector.store import SqliteStore, StoredIdentity
from connector.webhooks import signature
from localproc.ports import free_port

SETTINGS = (
    "CONNECTOR_DATA_DIR",
    "CONNECTOR_BACKBONE_URL",
    "CONNECTOR_CLIENT_ID",
    "CONNECTOR_CLIENT_SECRET",
    "CONNECTOR_STORAGE_KEY",
    "CONNECTOR_STORAGE_KEY_FILE",
    "CONNECTOR_PASSPHRASE",
    "CONNECTOR_API_KEY",
    "CONNECTOR_HOST",
    "CONNECTOR_PORT",
    "CONNECTOR_WEBHOOKS",
    "CONNECTOR_IDENTITY",
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONNECTOR_DATA_DIR", str(tmp_path / "org"))
    return monkeypatch


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_key_writes_a_private_file_once_and_never_overwrites_it(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys" / "org.key"
    assert cli.main(["new-key", str(key_file)]) == 0
    first = key_file.read_text()
    assert _mode(key_file) == 0o600
    assert len(base64.b64decode(first.strip())) == 32
    assert cli.main(["new-key", str(key_file)]) == 0  # a second run keeps the key
    assert key_file.read_text() == first
    assert "kept it" in capsys.readouterr().out
    env.setenv("CONNECTOR_STORAGE_KEY_FILE", str(key_file))
    assert Keystore.from_env(tmp_path).open(Keystore.from_env(tmp_path).seal(b"x", "y"), "y")


def test_storage_key_settings_are_named_when_wrong(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    env.setenv("CONNECTOR_STORAGE_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(KeystoreError, match=r"CONNECTOR_STORAGE_KEY_FILE .*connector new-key"):
        Keystore.from_env(tmp_path)
    (tmp_path / "short.key").write_text(base64.b64encode(b"too short").decode())
    env.setenv("CONNECTOR_STORAGE_KEY_FILE", str(tmp_path / "short.key"))
    with pytest.raises(KeystoreError, match="not base64 of 32 bytes"):
        Keystore.from_env(tmp_path)
    env.setenv("CONNECTOR_PASSPHRASE", "two ways at once")
    with pytest.raises(KeystoreError, match="only one of"):
        Keystore.from_env(tmp_path)


def test_the_salt_and_the_database_are_private(tmp_path: Path) -> None:
    Keystore.from_passphrase("correct horse", tmp_path / "org")
    salt = (tmp_path / "org" / "storage.salt").read_bytes()
    assert _mode(tmp_path / "org" / "storage.salt") == 0o600
    assert _mode(tmp_path / "org") == 0o700
    Keystore.from_passphrase("correct horse", tmp_path / "org")
    assert (tmp_path / "org" / "storage.salt").read_bytes() == salt  # never a second salt
    database = tmp_path / "org" / "connector.sqlite"
    private_database(database)
    SqliteStore(database).add_identity(StoredIdentity("a", b"k", "DVC", "USR", b"p", "t"))
    assert _mode(database) == 0o600
    database.chmod(0o644)  # made by an older version: tightened
    private_database(database)
    assert _mode(database) == 0o600


def test_init_without_the_client_secret_names_it_and_writes_nothing(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("CONNECTOR_STORAGE_KEY", base64.b64encode(os.urandom(32)).decode())
    assert cli.main(["init"]) == 2
    err = capsys.readouterr().err
    assert "CONNECTOR_CLIENT_SECRET is not set" in err
    assert "secrets/client.secret" in err
    assert not (tmp_path / "org").exists()


def test_init_refuses_before_touching_anything_when_an_identity_exists(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "org" / "connector.sqlite"
    private_database(database)
    store = SqliteStore(database)
    store.add_identity(StoredIdentity("did:e:localhost:dids:abc", b"k", "DVC", "USR", b"p", "t"))
    store.close()  # checkpointed now, not whenever the collector gets to it
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "org").iterdir()}
    # Not even a storage key or a client secret is needed to be told so.
    assert cli.main(["init"]) == 1
    assert "has an identity already (did:e:localhost:dids:abc" in capsys.readouterr().err
    assert cli.main(["init", "--if-missing"]) == 0
    assert "did:e:localhost:dids:abc" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "org").iterdir()} == before


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CONNECTOR_PORT", "80a", "CONNECTOR_PORT must be a port number"),
        ("CONNECTOR_PORT", "70000", "CONNECTOR_PORT must be a port number"),
        ("CONNECTOR_BACKBONE_URL", "127.0.0.1:8080", "CONNECTOR_BACKBONE_URL must be an http"),
    ],
)
def test_wrong_settings_are_named(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    says: str,
) -> None:
    env.setenv(name, value)
    with pytest.raises(SettingsError, match=says):
        ConnectorSettings.from_env()
    assert cli.main(["status"]) == 2
    assert says in capsys.readouterr().err


def test_serve_names_the_missing_api_key_secret_and_identity(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("CONNECTOR_STORAGE_KEY", base64.b64encode(os.urandom(32)).decode())
    env.setenv("CONNECTOR_PORT", str(free_port()))
    assert cli.main(["start"]) == 2
    assert "CONNECTOR_API_KEY must be set" in capsys.readouterr().err
    env.setenv("CONNECTOR_API_KEY", "k" * 32)
    assert cli.main(["start"]) == 2
    assert "CONNECTOR_CLIENT_SECRET is not set" in capsys.readouterr().err
    env.setenv("CONNECTOR_CLIENT_SECRET", "s" * 20)
    env.setenv("CONNECTOR_WEBHOOKS", '[{"url": "http://x/hook"}]')
    assert cli.main(["start"]) == 2
    assert "CONNECTOR_WEBHOOKS[0] (http://x/hook) needs a non-empty secret" in (
        capsys.readouterr().err
    )
    env.delenv("CONNECTOR_WEBHOOKS")
    assert cli.main(["start"]) == 2
    assert "run `connector init` first" in capsys.readouterr().err
    assert cli.main(["stop"]) == 0
    assert "no Connector started by `connector start`" in capsys.readouterr().out


def test_the_stream_drop_reason_names_the_cause_and_no_secret() -> None:
    refused = drop_reason(BackboneError(401, "invalid_client", "unknown client or wrong secret"))
    assert "401 invalid_client" in refused and "CONNECTOR_CLIENT_SECRET" in refused
    request = httpx.Request("GET", "http://user:pw@127.0.0.1:8080/api/v1/Mailbox?token=t")
    down = drop_reason(httpx.ConnectError("All connection attempts failed", request=request))
    assert down == "cannot reach the backbone at http://127.0.0.1:8080 (ConnectError)"
    response = httpx.Response(503, request=request)
    failed = drop_reason(httpx.HTTPStatusError("x", request=request, response=response))
    assert failed == "the backbone answered 503 on the mailbox stream"


def test_a_body_without_json_content_type_is_told_so() -> None:
    app = create_app(None, "k" * 32)  # type: ignore[arg-type]  # validation fails first
    with TestClient(app) as client:
        answer = client.post(
            "/api/v2/Messages",
            content=json.dumps({"recipients": ["x"], "content": {}}),
            headers={"X-API-KEY": "k" * 32, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "error.platform.validation.invalidContentType"
    assert "Content-Type: application/json" in error["message"]


def test_listen_prints_a_signed_event_and_refuses_a_forged_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from connector.listener import listen

    port = free_port()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(listen("127.0.0.1", port, "s3", 1, 20)))
    thread.start()
    body = json.dumps({"id": "e1", "type": "MessageReceived", "data": {"x": 1}}).encode()

    def post(secret: bytes) -> int:
        stamp = str(int(time.time()))
        headers = {
            "X-Connector-Timestamp": stamp,
            "X-Connector-Signature": signature(secret, stamp, body),
        }
        url = f"http://127.0.0.1:{port}/hook"
        return httpx.post(url, content=body, headers=headers, timeout=5).status_code

    deadline = time.monotonic() + 10
    while True:
        try:
            assert post(b"wrong") == 401
            break
        except httpx.ConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert post(b"s3") == 204
    thread.join(10)
    assert result == [0]
    assert '"type": "MessageReceived"' in capsys.readouterr().out


def test_init_names_an_unreachable_backbone(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    env.setenv("CONNECTOR_BACKBONE_URL", f"http://127.0.0.1:{port}")
    env.setenv("CONNECTOR_CLIENT_SECRET", "s" * 20)
    env.setenv("CONNECTOR_STORAGE_KEY", base64.b64encode(os.urandom(32)).decode())
    assert cli.main(["init"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the backbone at http://127.0.0.1:{port}" in err
    assert "CONNECTOR_BACKBONE_URL" in err
