"""Credentials and TLS reach every client from one place, from the environment or a config
file, and a secret never shows in a repr or an error."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import pytest

from backbone import settings as settings_module
from backbone.connections import (
    cassandra_cluster_kwargs,
    faust_app_kwargs,
    kafka_client_kwargs,
)
from backbone.settings import (
    BackboneSettings,
    CassandraSecurity,
    ClusterSettings,
    KafkaSecurity,
    SettingsError,
)

SECURITY_VARS = [
    "BACKBONE_CONFIG",
    "BACKBONE_KAFKA_BOOTSTRAP",
    "BACKBONE_CASSANDRA_CONTACT_POINTS",
    "BACKBONE_KAFKA_SECURITY_PROTOCOL",
    "BACKBONE_KAFKA_SASL_MECHANISM",
    "BACKBONE_KAFKA_USERNAME",
    "BACKBONE_KAFKA_PASSWORD",
    "BACKBONE_KAFKA_CA_FILE",
    "BACKBONE_KAFKA_CERT_FILE",
    "BACKBONE_KAFKA_KEY_FILE",
    "BACKBONE_KAFKA_SSL_CHECK_HOSTNAME",
    "BACKBONE_CASSANDRA_USERNAME",
    "BACKBONE_CASSANDRA_PASSWORD",
    "BACKBONE_CASSANDRA_TLS",
    "BACKBONE_CASSANDRA_CA_FILE",
    "BACKBONE_CASSANDRA_SSL_CHECK_HOSTNAME",
]
KAFKA_PASSWORD = "kafka-pass-Zq81"
CASSANDRA_PASSWORD = "cass-pass-Wm47"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECURITY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings_module, "_loaded_config", None)


def _secure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKBONE_KAFKA_BOOTSTRAP", "k1:9093,k2:9093,k3:9093")
    monkeypatch.setenv("BACKBONE_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("BACKBONE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("BACKBONE_KAFKA_USERNAME", "backbone")
    monkeypatch.setenv("BACKBONE_KAFKA_PASSWORD", KAFKA_PASSWORD)
    monkeypatch.setenv("BACKBONE_CASSANDRA_CONTACT_POINTS", "c1, c2,c3")
    monkeypatch.setenv("BACKBONE_CASSANDRA_USERNAME", "backbone")
    monkeypatch.setenv("BACKBONE_CASSANDRA_PASSWORD", CASSANDRA_PASSWORD)


def test_the_default_is_the_local_plaintext_launcher() -> None:
    kwargs = kafka_client_kwargs(ClusterSettings())
    assert kwargs == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert cassandra_cluster_kwargs(ClusterSettings()) == {
        "contact_points": ["127.0.0.1"],
        "port": 9042,
    }
    assert faust_app_kwargs(ClusterSettings())["broker_credentials"] is None


def test_sasl_credentials_and_several_hosts_reach_every_kind_of_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _secure_env(monkeypatch)
    cluster = ClusterSettings.from_env()
    kafka = kafka_client_kwargs(cluster)
    assert kafka["bootstrap_servers"] == "k1:9093,k2:9093,k3:9093"
    assert kafka["security_protocol"] == "SASL_PLAINTEXT"
    assert (kafka["sasl_mechanism"], kafka["sasl_plain_username"]) == ("SCRAM-SHA-256", "backbone")
    assert kafka["sasl_plain_password"] == KAFKA_PASSWORD
    # A site that only knows the bootstrap list gets the same security from the environment.
    assert kafka_client_kwargs("k9:9093") == {**kafka, "bootstrap_servers": "k9:9093"}

    faust = faust_app_kwargs(cluster)
    assert faust["broker"] == "kafka://k1:9093,k2:9093,k3:9093"
    credentials = faust["broker_credentials"]
    assert (credentials.username, credentials.mechanism.value) == ("backbone", "SCRAM-SHA-256")
    assert credentials.protocol.value == "SASL_PLAINTEXT"

    cassandra = cassandra_cluster_kwargs(cluster)
    assert cassandra["contact_points"] == ["c1", "c2", "c3"]
    assert cassandra["auth_provider"].username == "backbone"
    assert cassandra["auth_provider"].password == CASSANDRA_PASSWORD


def test_tls_trusts_the_configured_authority(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not ca.is_file():
        pytest.skip("no CA bundle on this machine to stand in for a cluster's CA")
    _secure_env(monkeypatch)
    monkeypatch.setenv("BACKBONE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BACKBONE_KAFKA_CA_FILE", str(ca))
    monkeypatch.setenv("BACKBONE_CASSANDRA_TLS", "true")
    monkeypatch.setenv("BACKBONE_CASSANDRA_CA_FILE", str(ca))
    monkeypatch.setenv("BACKBONE_CASSANDRA_SSL_CHECK_HOSTNAME", "false")
    cluster = ClusterSettings.from_env()
    kafka_context = kafka_client_kwargs(cluster)["ssl_context"]
    assert kafka_context.check_hostname and kafka_context.verify_mode == ssl.CERT_REQUIRED
    assert faust_app_kwargs(cluster)["broker_credentials"].protocol.value == "SASL_SSL"
    assert not cassandra_cluster_kwargs(cluster)["ssl_context"].check_hostname

    monkeypatch.setenv("BACKBONE_KAFKA_CA_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match=r"BACKBONE_KAFKA_CA_FILE names .*missing\.pem"):
        kafka_client_kwargs(ClusterSettings.from_env())


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BACKBONE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "BACKBONE_KAFKA_SECURITY_PROTOCOL"),
        ({"BACKBONE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "BACKBONE_KAFKA_PASSWORD"),
        ({"BACKBONE_KAFKA_SASL_MECHANISM": "MD5"}, "BACKBONE_KAFKA_SASL_MECHANISM"),
        ({"BACKBONE_CASSANDRA_USERNAME": "x"}, "BACKBONE_CASSANDRA_PASSWORD"),
        ({"BACKBONE_CASSANDRA_TLS": "maybe"}, "BACKBONE_CASSANDRA_TLS"),
    ],
)
def test_a_bad_security_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        ClusterSettings.from_env()


def test_no_repr_shows_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    _secure_env(monkeypatch)
    monkeypatch.setenv("BACKBONE_MASTER_KEY", "bWFzdGVyLWtleS1tYXN0ZXIta2V5LW1hc3Rlci1rZXk=")
    monkeypatch.setenv("BACKBONE_SIGNING_SEED", "c2VlZC1zZWVkLXNlZWQtc2VlZC1zZWVkLXNlZWQtc2U=")
    monkeypatch.setenv("BACKBONE_CLIENTS", "app:client-secret-0123456789")
    backbone = BackboneSettings.from_env()
    shown = " ".join(
        [
            repr(backbone),
            str(backbone.cluster),
            repr(backbone.cluster.kafka_security),
            repr(backbone.cluster.cassandra_security),
            str(faust_app_kwargs(backbone.cluster)),
        ]
    )
    for secret in (
        KAFKA_PASSWORD,
        CASSANDRA_PASSWORD,
        "client-secret-0123456789",
        backbone.master_key_b64,
        backbone.signing_seed_b64,
    ):
        assert secret not in shown
    assert "username='backbone', password='***'" in shown
    assert repr(KafkaSecurity()).count("password=''") == 1
    assert "password=''" in repr(CassandraSecurity())


def test_the_config_file_fills_what_the_environment_leaves_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "backbone.toml"
    config.write_text(
        f"""
partitions = 24
[kafka]
bootstrap = "k1:9093,k2:9093"
security_protocol = "SASL_PLAINTEXT"
username = "from-file"
password = "{KAFKA_PASSWORD}"
[cassandra]
contact_points = ["c1", "c2"]
tls = false
"""
    )
    config.chmod(0o600)
    monkeypatch.setenv("BACKBONE_CONFIG", str(config))
    monkeypatch.setenv("BACKBONE_KAFKA_USERNAME", "from-env")  # the environment wins
    for name in ("BACKBONE_PARTITIONS", "BACKBONE_CASSANDRA_TLS"):
        monkeypatch.delenv(name, raising=False)
    try:
        cluster = ClusterSettings.from_env()
        assert cluster.kafka_bootstrap == "k1:9093,k2:9093"
        assert cluster.kafka_security.username == "from-env"
        assert cluster.kafka_security.password == KAFKA_PASSWORD
        assert cluster.cassandra_contact_points == ("c1", "c2")
        assert not cluster.cassandra_security.tls
        # Also for readers of the environment beyond the cluster settings: `backbone
        # worker` hands its environment to faust.
        assert os.environ["BACKBONE_PARTITIONS"] == "24"
    finally:
        for name in (
            "BACKBONE_PARTITIONS",
            "BACKBONE_CASSANDRA_TLS",
            "BACKBONE_KAFKA_PASSWORD",
            "BACKBONE_KAFKA_BOOTSTRAP",
            "BACKBONE_KAFKA_SECURITY_PROTOCOL",
            "BACKBONE_CASSANDRA_CONTACT_POINTS",
        ):
            os.environ.pop(name, None)


def test_a_config_file_with_secrets_readable_by_others_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "backbone.toml"
    config.write_text(f'[cassandra]\nusername = "backbone"\npassword = "{CASSANDRA_PASSWORD}"\n')
    config.chmod(0o644)
    monkeypatch.setenv("BACKBONE_CONFIG", str(config))
    monkeypatch.setenv("BACKBONE_CASSANDRA_USERNAME", "backbone")
    monkeypatch.setenv("BACKBONE_CASSANDRA_PASSWORD", "from-env-wins")
    with caplog.at_level(logging.WARNING, logger="backbone.settings"):
        ClusterSettings.from_env()
    assert "BACKBONE_CASSANDRA_PASSWORD" in caplog.text
    assert "chmod 600" in caplog.text
    assert CASSANDRA_PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("kafka = [", "cannot read"), ("[kafka]\nx = {a = 1}\n", None)],
)
def test_a_broken_config_file_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None, message: str | None
) -> None:
    config = tmp_path / "backbone.toml"
    if content is not None:
        config.write_text(content)
    monkeypatch.setenv("BACKBONE_CONFIG", str(config))
    if message is None:  # a nested table is a longer name, not an error
        monkeypatch.delenv("BACKBONE_KAFKA_X_A", raising=False)
        ClusterSettings.from_env()
        assert os.environ.pop("BACKBONE_KAFKA_X_A") == "1"
        return
    with pytest.raises(SettingsError, match=f"BACKBONE_CONFIG.*{message}"):
        ClusterSettings.from_env()


def test_the_readme_example_file_is_what_it_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Running on an existing cluster", 1)[1]
    example = section.split("```toml", 1)[1].split("```", 1)[0]
    config = tmp_path / "backbone.toml"
    config.write_text(example.replace('password = "..."', f'password = "{KAFKA_PASSWORD}"'))
    config.chmod(0o600)
    monkeypatch.setenv("BACKBONE_CONFIG", str(config))
    names = (
        "BACKBONE_KAFKA_REPLICATION_FACTOR",
        "BACKBONE_KAFKA_MIN_INSYNC_REPLICAS",
        "BACKBONE_CASSANDRA_REPLICATION",
        "BACKBONE_CASSANDRA_USERNAME",
    )
    for name in names:
        monkeypatch.delenv(name, raising=False)
    try:
        cluster = ClusterSettings.from_env()
    finally:
        for name in (*names, *SECURITY_VARS):
            if name != "BACKBONE_CONFIG":
                os.environ.pop(name, None)
    assert cluster.kafka_bootstrap.count(",") == 2
    assert (cluster.kafka_security.protocol, cluster.kafka_security.password) == (
        "SASL_SSL",
        KAFKA_PASSWORD,
    )
    assert cluster.kafka_security.ca_file == "/etc/backbone/kafka-ca.pem"
    assert (cluster.kafka_replication_factor, cluster.kafka_min_insync_replicas) == (3, 2)
    assert len(cluster.cassandra_contact_points) == 3
    assert cluster.cassandra_security.tls and cluster.cassandra_security.username == "backbone"
    assert cluster.cassandra_replication == "dc1:3"


def test_the_access_check_reads_bootstrap_addresses_as_kafka_does() -> None:
    from backbone.connections import _host_port

    assert _host_port("kafka-0.kafka:9093") == ("kafka-0.kafka", 9093)
    assert _host_port("kafka-0.kafka") == ("kafka-0.kafka", 9092)
    assert _host_port("[::1]:9093") == ("::1", 9093)
    assert _host_port("[::1]") == ("::1", 9092)
