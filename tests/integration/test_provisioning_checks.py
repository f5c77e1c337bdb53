"""Provisioning refuses, by name, replication the cluster cannot hold (here: one Kafka
broker and one Cassandra node), and takes what it can."""

from __future__ import annotations

from typing import Any

import pytest

from backbone.settings import ClusterSettings
from store.topics import ProvisioningError, TopicSpec, ensure_topics
from streams.readmodels import create_schema
from tests.conftest import Infra

pytestmark = pytest.mark.integration


async def test_a_replication_factor_above_the_broker_count_is_refused(
    infra: Infra, cluster_settings: ClusterSettings, kafka_topics: None
) -> None:
    spec = TopicSpec(f"{cluster_settings.topic_prefix}rf-check", 1)
    with pytest.raises(ProvisioningError, match=r"REPLICATION_FACTOR is 3.*1 broker"):
        await ensure_topics(infra.kafka_bootstrap, [spec], replication_factor=3)


def test_cassandra_replication_the_nodes_cannot_hold_is_refused(cassandra_session: Any) -> None:
    own = cassandra_session.keyspace
    keyspace = f"{own}_rf"
    with pytest.raises(ProvisioningError, match="asks for 3 replicas in the cluster"):
        create_schema(cassandra_session, keyspace, "3")
    with pytest.raises(ProvisioningError, match="datacenter 'nowhere'"):
        create_schema(cassandra_session, keyspace, "nowhere:1")
    dc = cassandra_session.execute("SELECT data_center FROM system.local").one().data_center
    try:
        create_schema(cassandra_session, keyspace, f"{dc}:1")
        row = cassandra_session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (keyspace,),
        ).one()
        assert row.replication["class"].endswith("NetworkTopologyStrategy")
        assert row.replication[dc] == "1"
    finally:
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        cassandra_session.set_keyspace(own)  # create_schema moved the shared session
