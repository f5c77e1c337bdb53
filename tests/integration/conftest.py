"""The backbone's worker and API, running against this test run's topics and keyspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backbone.settings import ClusterSettings
from tests.integration.stack import Stack


@pytest.fixture(scope="session")
def stack(
    cluster_settings: ClusterSettings,
    kafka_topics: None,
    cassandra_session: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    running = Stack(cluster_settings, tmp_path_factory.mktemp("stack"))
    running.start()
    try:
        yield running
    finally:
        running.stop()
