"""Replication and consistency come from configuration, and a bad value is named."""

from __future__ import annotations

import pytest

from backbone.settings import ClusterSettings, cassandra_replication


def test_replication_is_a_count_or_datacenter_pairs() -> None:
    assert cassandra_replication("3") == {"": 3}
    assert cassandra_replication("dc1:3, dc2:2") == {"dc1": 3, "dc2": 2}


@pytest.mark.parametrize("spec", ["", "0", "three", "dc1", "dc1:x", ":3", "dc1:0"])
def test_a_bad_replication_is_refused_by_name(spec: str) -> None:
    with pytest.raises(ValueError, match="BACKBONE_CASSANDRA_REPLICATION"):
        cassandra_replication(spec)


def test_the_defaults_fit_one_local_node() -> None:
    cluster = ClusterSettings()
    assert (cluster.kafka_replication_factor, cluster.kafka_min_insync_replicas) == (1, 1)
    assert cluster.cassandra_replication == "1"
    assert cluster.cassandra_consistency == "LOCAL_QUORUM"


def test_production_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKBONE_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("BACKBONE_KAFKA_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("BACKBONE_CASSANDRA_REPLICATION", "eu-central:3")
    monkeypatch.setenv("BACKBONE_CASSANDRA_CONSISTENCY", "local_quorum")
    cluster = ClusterSettings.from_env()
    assert (cluster.kafka_replication_factor, cluster.kafka_min_insync_replicas) == (3, 2)
    assert cluster.cassandra_replication == "eu-central:3"
    assert cluster.cassandra_consistency == "LOCAL_QUORUM"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKBONE_KAFKA_MIN_INSYNC_REPLICAS", "2"),  # more than the replication factor (1)
        ("BACKBONE_KAFKA_REPLICATION_FACTOR", "0"),
        ("BACKBONE_CASSANDRA_CONSISTENCY", "MOSTLY"),
        ("BACKBONE_CASSANDRA_SERIAL_CONSISTENCY", "QUORUM"),
    ],
)
def test_an_impossible_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        ClusterSettings.from_env()
