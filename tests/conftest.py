"""Real Kafka and Cassandra for the test session, and per-run isolation.

Where they come from, in this order:
1. an existing cluster named by BACKBONE_KAFKA_BOOTSTRAP and BACKBONE_CASSANDRA_CONTACT_POINTS;
2. testcontainers' Kafka and Cassandra, when a Docker engine answers;
3. the local launcher in deploy/ (reusing what `backbone up` already runs, else starting
   it for the session and stopping it afterwards).
Each run gets its own Cassandra keyspace and Kafka topic prefix, so runs never share data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from backbone.settings import ClusterSettings, InfraSettings


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    cassandra_contact_points: tuple[str, ...]
    cassandra_port: int
    source: str  # "existing", "testcontainers" or "local"


@dataclass(frozen=True)
class RunScope:
    """Names private to this test run."""

    run_id: str
    keyspace: str
    topic_prefix: str

    def cluster_settings(self, infra: Infra) -> ClusterSettings:
        return ClusterSettings(
            kafka_bootstrap=infra.kafka_bootstrap,
            cassandra_contact_points=infra.cassandra_contact_points,
            cassandra_port=infra.cassandra_port,
            keyspace=self.keyspace,
            topic_prefix=self.topic_prefix,
        )


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def _testcontainers() -> Iterator[Infra]:
    from testcontainers.cassandra import CassandraContainer
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka, CassandraContainer() as cassandra:
        host, port = cassandra.get_contact_points()[0]
        yield Infra(kafka.get_bootstrap_server(), (host,), int(port), "testcontainers")


@contextlib.contextmanager
def _local_launcher() -> Iterator[Infra]:
    from deploy import infra

    settings = InfraSettings.from_env()
    already_running = all(s.pid is not None for s in infra.status(settings))
    infra.up(settings, echo=False)
    try:
        yield Infra(settings.kafka_bootstrap, ("127.0.0.1",), settings.cassandra_port, "local")
    finally:
        if not already_running and os.environ.get("BACKBONE_TEST_KEEP_INFRA") != "1":
            infra.down(settings, echo=False)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    if ClusterSettings.names_existing_cluster():
        cluster = ClusterSettings.from_env()
        yield Infra(
            cluster.kafka_bootstrap,
            cluster.cassandra_contact_points,
            cluster.cassandra_port,
            "existing",
        )
    elif _docker_answers():
        with _testcontainers() as found:
            yield found
    else:
        with _local_launcher() as found:
            yield found


@pytest.fixture(scope="session")
def run_scope() -> RunScope:
    run_id = uuid.uuid4().hex[:10]
    return RunScope(run_id, keyspace=f"test_{run_id}", topic_prefix=f"test.{run_id}.")


@pytest.fixture(scope="session")
def cluster_settings(infra: Infra, run_scope: RunScope) -> ClusterSettings:
    return run_scope.cluster_settings(infra)


@pytest.fixture(scope="session")
def cassandra_session(infra: Infra, run_scope: RunScope) -> Iterator[object]:
    """A cassandra-driver session bound to this run's own keyspace (dropped afterwards)."""
    from cassandra.cluster import Cluster

    cluster = Cluster(list(infra.cassandra_contact_points), port=infra.cassandra_port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {run_scope.keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.set_keyspace(run_scope.keyspace)
    yield session
    session.execute(f"DROP KEYSPACE IF EXISTS {run_scope.keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture(scope="session")
async def kafka_topics(infra: Infra, run_scope: RunScope) -> AsyncIterator[None]:
    """Deletes every topic of this run at the end of the session."""
    yield
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(run_scope.topic_prefix)]
        if mine:
            await asyncio.wait_for(admin.delete_topics(mine), timeout=30)
    finally:
        await admin.close()
