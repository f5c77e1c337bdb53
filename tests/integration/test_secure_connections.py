"""The backbone on stores that require credentials and TLS, as a production cluster does.

The launcher's secure mode (deploy/secure.py) starts a private Kafka whose only client
listener is SASL_SSL with SCRAM users, and a private Cassandra that requires a password and
TLS. What a user relies on: provisioning, a worker and the API work there with the
settings `backbone infra up --secure` writes, a message goes from sender to recipient's
mailbox; and a wrong password, a missing CA or the wrong protocol stop `backbone provision`,
`backbone worker` and `backbone api` at once with exit code 2 and a message that names what
failed and never shows a password.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.settings import InfraSettings
from deploy import infra, secure
from localproc.ports import free_port
from tests.integration.api_client import new_party, relate
from tests.integration.stack import Stack, own_infra_settings
from tests.integration.test_mailbox_api import _mailbox_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraSettings]:
    settings = own_infra_settings(tmp_path_factory.mktemp("secure-infra"), secure=True)
    try:
        infra.up(settings, echo=False)  # both JVMs start at once, then both are waited for
        yield settings
    finally:
        infra.down(settings, echo=False)


@pytest.fixture(scope="module")
def secure_stack(
    secure_infra: InfraSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    cluster = dataclasses.replace(
        secure.client_cluster(secure_infra), keyspace="secure", topic_prefix="secure."
    )
    # Only BACKBONE_CONFIG, as an operator would set it: the file the launcher wrote.
    config = secure.secure_dir(secure_infra) / "client.toml"
    stack = Stack(cluster, tmp_path_factory.mktemp("secure-stack"), BACKBONE_CONFIG=str(config))
    try:
        stack.provision()
        stack.api.start()  # starts beside the worker: each takes tens of seconds here
        stack.start_worker()
        stack.wait_api_ready()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def http(secure_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secure_stack.base_url, timeout=60) as client:
        yield client


def test_the_secure_stores_keep_their_secrets_to_their_owner(secure_infra: InfraSettings) -> None:
    directory = secure.secure_dir(secure_infra)
    for path in [directory, *directory.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


async def test_a_message_crosses_the_secure_cluster(http: httpx.AsyncClient) -> None:
    sender, recipient = await new_party(http), await new_party(http)
    await relate(http, recipient, sender)
    body = {
        "recipients": [{"address": recipient.address, "encryptedKey": "a2V5"}],
        "body": base64.b64encode(b"over SASL_SSL").decode(),
    }
    sent = await http.post("/api/v1/Messages", json=body, headers=sender.headers)
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["result"]["id"]

    def received(entries: list[dict[str, Any]]) -> bool:
        return any(
            e["type"] == "MessageReceived"
            and message_id in (e["payload"].get("messageId"), e["payload"].get("id"))
            for e in entries
        )

    assert received(await _mailbox_until(http, recipient, received))


def test_no_password_reaches_a_log(secure_infra: InfraSettings, secure_stack: Stack) -> None:
    passwords = [
        path.read_text().strip() for path in secure.secure_dir(secure_infra).rglob("*.password")
    ]
    logs = [
        secure_stack.worker.log_file,
        secure_stack.api.log_file,
        *secure_infra.state_dir.glob("*/*.log"),
    ]
    assert len(passwords) == 4 and len(logs) >= 4
    for log in logs:
        text = log.read_text(errors="replace")
        assert not [p for p in passwords if p in text], f"a password is in {log}"


# (command, what is changed in the settings, what the message must say)
REFUSALS = [
    (
        "provision",
        {"BACKBONE_KAFKA_PASSWORD": "wrong-kafka-pw-1"},
        "refused user 'backbone' (SASL_SSL, SCRAM-SHA-512): authentication failed",
    ),
    (
        "worker",
        {"BACKBONE_CASSANDRA_PASSWORD": "wrong-cassandra-pw-2"},
        "refused user 'backbone': authentication failed; check BACKBONE_CASSANDRA_USERNAME",
    ),
    ("api", {"BACKBONE_KAFKA_CA_FILE": ""}, "TLS failed (CERTIFICATE_VERIFY_FAILED)"),
    (
        "api",
        {"BACKBONE_CASSANDRA_USERNAME": "", "BACKBONE_CASSANDRA_PASSWORD": ""},
        "requires a password: set BACKBONE_CASSANDRA_USERNAME",
    ),
    (
        "worker",
        {"BACKBONE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
        "closed the connection in the handshake",
    ),
    ("provision", {"BACKBONE_CASSANDRA_TLS": "false"}, "it requires TLS"),
]


def test_wrong_credentials_stop_every_process_at_once_and_clearly(
    secure_infra: InfraSettings, tmp_path: Path
) -> None:
    right = secure.client_env(secure_infra)
    base = {
        **os.environ,
        **right,
        "BACKBONE_STATE_DIR": str(tmp_path),
        "BACKBONE_CASSANDRA_KEYSPACE": "secure_refused",
        "BACKBONE_TOPIC_PREFIX": "secure-refused.",
        "BACKBONE_API_PORT": str(free_port()),
        "BACKBONE_WORKER_METRICS_PORT": "0",
    }
    # All at once: each is a Python start-up and one connection attempt.
    runs = [
        (
            command,
            change,
            said,
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "backbone.cli",
                    command,
                    *(["--data-dir", str(tmp_path / f"w{i}")] if command == "worker" else []),
                ],
                env={**base, **change},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for i, (command, change, said) in enumerate(REFUSALS)
    ]
    secrets = [right["BACKBONE_KAFKA_PASSWORD"], right["BACKBONE_CASSANDRA_PASSWORD"]]
    for command, change, said, process in runs:
        try:
            out, err = process.communicate(timeout=120)
        finally:
            process.kill()
        shown = out + err
        assert process.returncode == 2, f"{command} with {change}: {process.returncode}\n{shown}"
        assert err.startswith("error: "), shown  # one line, no traceback
        assert said in err, f"{command} with {change} said:\n{err}"
        for secret in [*secrets, *(v for k, v in change.items() if "PASSWORD" in k and v)]:
            assert secret not in shown, f"{command} printed a password"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_each_sasl_mechanism_takes_the_right_password_only(
    secure_infra: InfraSettings, mechanism: str
) -> None:
    from backbone.connections import ClusterAccessError, check_access

    right = secure.client_cluster(secure_infra)
    kafka = dataclasses.replace(right.kafka_security, sasl_mechanism=mechanism)
    check_access(dataclasses.replace(right, kafka_security=kafka))
    wrong = dataclasses.replace(kafka, password="not-the-password")
    with pytest.raises(ClusterAccessError, match=f"refused user 'backbone' .*{mechanism}"):
        check_access(dataclasses.replace(right, kafka_security=wrong))
