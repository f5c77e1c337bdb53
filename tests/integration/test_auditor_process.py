"""The auditor is one of the processes `backbone up` starts (deploy/backbone.py): started the
way `up` starts it, it audits the log and signs a checkpoint, `backbone status` shows it
healthy, and `backbone down` stops it (then status shows it stopped)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone.settings import BackboneSettings, ClusterSettings, InfraSettings
from deploy import backbone as processes
from store.topics import TopicSpec, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_topics")]


async def test_backbone_up_starts_the_auditor_status_shows_it_and_down_stops_it(
    cluster_settings: ClusterSettings,
    cassandra_session: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"{cluster_settings.topic_prefix}auditproc."
    keyspace = f"{cluster_settings.keyspace}_ap"
    for name, value in {
        "BACKBONE_STATE_DIR": str(tmp_path / "state"),
        "BACKBONE_KAFKA_BOOTSTRAP": cluster_settings.kafka_bootstrap,
        "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(cluster_settings.cassandra_contact_points),
        "BACKBONE_CASSANDRA_PORT": str(cluster_settings.cassandra_port),
        "BACKBONE_CASSANDRA_KEYSPACE": keyspace,
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_AUDIT_INTERVAL": "1",
    }.items():
        monkeypatch.setenv(name, value)
    bootstrap = cluster_settings.kafka_bootstrap
    await ensure_topics(
        bootstrap, [TopicSpec(f"{prefix}events", 1), TopicSpec(f"{prefix}mailbox-entries", 1)]
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(f"{prefix}events", f"record {i}".encode(), key=b"k")
    finally:
        await producer.stop()

    infra = InfraSettings.from_env()
    auditor = next(p for p in processes.parts(infra) if p.process.name == "auditor")
    try:
        auditor.process.start(auditor.argv)  # as `backbone up` starts every part
        size = 0
        query = f"SELECT size FROM {keyspace}_audit.audit_state"  # noqa: S608
        for _ in range(120):
            await asyncio.sleep(0.5)
            assert not auditor.process.exited(), auditor.process.log_tail()
            try:
                size = sum(r.size for r in cassandra_session.execute(query))
            except Exception:  # noqa: S112  # its keyspace is not made yet
                continue
            if size == 5:
                break
        assert size == 5, auditor.process.log_tail()
        row = next(r for r in processes.health(infra) if r.name == "auditor")
        assert row.healthy and row.pid == auditor.process.pid()
    finally:
        processes.down(infra, BackboneSettings.from_env(), echo=False)
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}_audit", timeout=60)
    assert auditor.process.pid() is None
    row = next(r for r in processes.health(infra) if r.name == "auditor")
    assert not row.healthy and row.pid is None
