"""The local cluster's configuration (`backbone infra up --nodes N`), without starting it:
each node on its own loopback address, one Kafka cluster id, one controller quorum and one
Cassandra ring of all nodes, and the backbone's settings for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.settings import ClusterSettings, InfraSettings, cassandra_replication
from deploy import cluster
from deploy.cluster import Layout
from deploy.process import LaunchError
from deploy.service import render


def _layout(tmp_path: Path, nodes: int = 3) -> Layout:
    infra = InfraSettings(
        state_dir=tmp_path,
        kafka_port=19092,
        kafka_controller_port=19093,
        cassandra_storage_port=17000,
    )
    return Layout(nodes, infra)


def test_every_kafka_node_votes_in_one_quorum_of_all_nodes(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    texts = []
    for node in layout.kafka():
        path = render(node.template, tmp_path / f"{node.name}.properties", **node.config_values())
        texts.append(path.read_text())
    voters = "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.2:19093,3@127.0.0.3:19093"
    for n, text in enumerate(texts, 1):
        assert "${" not in text
        assert voters in text
        assert f"node.id={n}\n" in text
        assert f"listeners=PLAINTEXT://127.0.0.{n}:19092,CONTROLLER://127.0.0.{n}:19093" in text
        assert "offsets.topic.replication.factor=3" in text
        assert "min.insync.replicas=2" in text
    # One cluster: every node's storage is formatted with the same id.
    assert len({node.cluster_id() for node in layout.kafka()}) == 1


def test_every_cassandra_node_listens_on_its_own_address_and_knows_all_seeds(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path)
    seeds = "127.0.0.1:17000,127.0.0.2:17000,127.0.0.3:17000"
    for n, node in enumerate(layout.cassandra(), 1):
        values = node.ring_values()
        assert values["host"] == f"127.0.0.{n}"
        assert values["seeds"] == seeds
        assert node.home == tmp_path / f"cassandra-{n}"


def test_the_backbone_settings_for_the_cluster_are_valid_and_use_three_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _layout(tmp_path).backbone_env().items():
        monkeypatch.setenv(name, value)
    settings = ClusterSettings.from_env()
    assert settings.kafka_replication_factor == 3
    assert settings.kafka_min_insync_replicas == 2
    assert cassandra_replication(settings.cassandra_replication) == {"datacenter1": 3}
    assert settings.cassandra_contact_points == ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def test_the_cluster_keeps_apart_from_the_one_node_infrastructure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKBONE_STATE_DIR", str(tmp_path))
    single = InfraSettings.from_env()
    layout = Layout.from_env(3)
    assert layout.infra.state_dir != single.state_dir
    assert layout.infra.kafka_port != single.kafka_port
    assert layout.infra.cassandra_port != single.cassandra_port
    with pytest.raises(LaunchError, match="between 2 and"):
        Layout.from_env(1)


def test_the_active_controller_is_the_node_that_took_the_highest_epoch(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    lines = {
        1: "[QuorumController id=1] Becoming the active controller at epoch 1, next write",
        2: "[QuorumController id=2] Becoming the active controller at epoch 7, next write",
        3: "[QuorumController id=3] Becoming the active controller at epoch 4, next write",
    }
    assert cluster.active_controller(layout) is None  # no node has logged anything yet
    for node in layout.kafka():
        node.process.log_file.parent.mkdir(parents=True, exist_ok=True)
        node.process.log_file.write_text(f"INFO something else\n{lines[node.node]}\n")
    # Each node logs the epochs it led; the latest leader is the one with the highest.
    assert cluster.active_controller(layout) == 2
