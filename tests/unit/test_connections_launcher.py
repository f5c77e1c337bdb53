"""The launcher's secure mode leaves no plaintext door: whatever the Kafka template renders
(one node or a node of the local cluster), the client listener becomes SASL_SSL, and
Cassandra requires passwords and TLS. Checked on the real templates, without starting them."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.settings import InfraSettings
from deploy import secure
from deploy.service import render
from deploy.tls import TlsFiles

TLS = TlsFiles(ca_file=Path("/s/ca.pem"), keystore=Path("/s/server.p12"), keystore_password="ks")
NODE = {
    "port": 9092,
    "controller_port": 9093,
    "data_dir": "/d",
    "host": "127.0.0.2",
    "node_id": 2,
    "voters": "1@127.0.0.1:9093",
    "replicas": 3,
    "min_insync": 2,
}


def _properties(text: str) -> dict[str, str]:
    """As Java reads a .properties file: the last line of a key wins."""
    props = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


@pytest.mark.parametrize("template", ["kafka.properties", "kafka-cluster.properties"])
def test_kafka_has_only_a_sasl_ssl_client_listener(template: str, tmp_path: Path) -> None:
    if not (Path(secure.__file__).parent / "conf" / template).exists():
        pytest.skip(f"no {template} in this checkout")
    rendered = render(template, tmp_path / "server.properties", **NODE).read_text()
    props = _properties(secure.secure_properties(rendered, TLS, "broker-pw", "client-pw"))
    listeners = props["listeners"].split(",")
    assert [x for x in listeners if not x.startswith("CONTROLLER://")] == [
        x.replace("PLAINTEXT://", "SASL_SSL://")
        for x in _properties(rendered)["listeners"].split(",")
        if x.startswith("PLAINTEXT://")
    ]
    assert all(x.startswith("SASL_SSL://") for x in props["advertised.listeners"].split(","))
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    assert 'user_backbone="client-pw"' in props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert props["ssl.keystore.location"] == "/s/server.p12"
    assert (
        'username="broker" password="broker-pw"'
        in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    )


def test_kafka_storage_is_formatted_with_both_users(tmp_path: Path) -> None:
    kafka = secure.SecureKafka(InfraSettings(state_dir=tmp_path, secure=True))
    args = kafka.format_args()
    scram = [a for a in args if a != "--add-scram"]
    assert len(scram) == 4 and args.count("--add-scram") == 4
    assert {s.split("=[")[0] for s in scram} == {"SCRAM-SHA-512", "SCRAM-SHA-256"}
    assert {s.split("name=")[1].split(",")[0] for s in scram} == {"backbone", "broker"}
    # The clients' password is the one the client settings carry.
    client = secure.client_cluster(InfraSettings(state_dir=tmp_path, secure=True))
    assert f"name=backbone,password={client.kafka_security.password}]" in " ".join(scram)


def test_cassandra_requires_passwords_and_tls(tmp_path: Path) -> None:
    rendered = render(
        "cassandra.yaml",
        tmp_path / "cassandra.yaml",
        port=9042,
        storage_port=7000,
        data_dir="/d",
        commitlog_sync="commitlog_sync: batch",
        host="127.0.0.1",
        seeds="127.0.0.1:7000",
        token_replicas=1,
    ).read_text()
    text = secure.secure_yaml(rendered, TLS)
    assert "AllowAll" not in text
    assert "authenticator: PasswordAuthenticator" in text
    assert "authorizer: CassandraAuthorizer" in text
    assert "client_encryption_options:\n  enabled: true\n  optional: false\n" in text


def test_a_secure_state_directory_stays_secure(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path)
    assert not secure.wanted(settings)
    secure.write_client_config(settings)
    assert secure.wanted(settings)
    config = tmp_path / "secure" / "client.toml"
    assert config.stat().st_mode & 0o077 == 0
    assert (tmp_path / "secure").stat().st_mode & 0o077 == 0
