"""Everything the workers and the API expect to exist: Kafka topics and Cassandra tables.

Idempotent; `backbone up` and the test fixtures run it before starting any process.
"""

from __future__ import annotations

from backbone.settings import BackboneSettings
from store.cassandra import connect
from store.topics import TopicNames, ensure_topics
from streams.readmodels import create_schema


async def provision(settings: BackboneSettings) -> None:
    names = TopicNames(settings.cluster.topic_prefix)
    specs = names.specs(settings.partitions) + names.changelog_specs(
        settings.app_id, settings.partitions
    )
    await ensure_topics(
        settings.cluster.kafka_bootstrap,
        specs,
        settings.cluster.kafka_replication_factor,
        settings.cluster.kafka_min_insync_replicas,
    )
    cluster, session = connect(settings.cluster)
    try:
        create_schema(session, settings.cluster.keyspace, settings.cluster.cassandra_replication)
    finally:
        cluster.shutdown()
