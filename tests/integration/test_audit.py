"""The tamper-evident log on real Kafka and Cassandra: the auditor signs checkpoints of a
topic's partitions, `audit verify` names each altered, removed, swapped and inserted record
of a tampered copy at its offset, proofs check offline and fail when a byte changes, and a
checkpoint signed with another key is rejected."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from backbone.audit import auditor as auditor_module
from backbone.audit.auditor import Auditor, audit_once
from backbone.audit.checkpoints import Checkpoint, Signer, TreeHead
from backbone.audit.logread import read_partition
from backbone.audit.merkle import ProofError
from backbone.audit.prove import check_bundle, prove_consistency, prove_inclusion
from backbone.audit.settings import AuditSettings, checkpoint_topic
from backbone.audit.store import AuditStore
from backbone.audit.verify import (
    ALTERED,
    BAD_CHECKPOINT,
    DIFFERS,
    INSERTED,
    REMOVED,
    REORDERED,
    UNCOVERED,
    verify_partition,
)
from backbone.settings import ClusterSettings
from store.cassandra import connect
from store.topics import TopicSpec, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kafka_topics")]

SEED = bytes(range(32))
SIGNER = Signer(SEED)


@pytest.fixture(scope="module")
def audit(cluster_settings: ClusterSettings) -> AuditSettings:
    return AuditSettings(
        cluster=cluster_settings,
        keyspace=f"{cluster_settings.keyspace}_audit",
        topics=(f"{cluster_settings.topic_prefix}audit-src",),
        interval_s=0.2,
        checkpoint_topic=checkpoint_topic(cluster_settings.topic_prefix),
    )


@pytest.fixture(scope="module")
def audit_keyspace(audit: AuditSettings, cassandra_session: Any) -> Iterator[None]:
    """The auditor makes its keyspace on its first start; it is dropped afterwards."""
    yield
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {audit.keyspace}", timeout=60)


@pytest.fixture(scope="module")
def store(audit: AuditSettings, source: str) -> Iterator[AuditStore]:
    cluster, session = connect(audit.cluster, audit.keyspace)
    try:
        yield AuditStore(session)
    finally:
        cluster.shutdown()


def _env(audit: AuditSettings) -> dict[str, str]:
    """The environment of a `backbone` command on this test's topics and keyspace."""
    return {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": audit.cluster.kafka_bootstrap,
        "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(audit.cluster.cassandra_contact_points),
        "BACKBONE_CASSANDRA_PORT": str(audit.cluster.cassandra_port),
        "BACKBONE_CASSANDRA_KEYSPACE": audit.cluster.keyspace,
        "BACKBONE_TOPIC_PREFIX": audit.cluster.topic_prefix,
        "BACKBONE_AUDIT_TOPICS": "audit-src",
        "BACKBONE_AUDIT_SEED": base64.b64encode(SEED).decode(),
        "BACKBONE_AUDIT_INTERVAL": "0.2",
    }


def _record(i: int) -> tuple[bytes, bytes]:
    # Stand-ins for envelopes: what the auditor hashes is opaque bytes either way.
    return f"agg-{i % 5}".encode(), f"sealed-{i}-".encode() + os.urandom(60)


async def _produce(
    topic: str, partition: int, records: list[tuple[bytes, bytes]], bootstrap: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def source(audit: AuditSettings, audit_keyspace: None) -> AsyncIterator[str]:
    """A two-partition source topic with 30 records in each, audited twice (so there are
    two checkpoints per partition: 20 records, then 30)."""
    bootstrap = audit.cluster.kafka_bootstrap
    topic = audit.topics[0]
    await ensure_topics(bootstrap, [TopicSpec(topic, 2)])
    for p in (0, 1):
        await _produce(topic, p, [_record(i) for i in range(20)], bootstrap)
    stats = await audit_once(audit, SIGNER)
    assert (stats.records, stats.checkpoints) == (40, 2)
    for p in (0, 1):
        await _produce(topic, p, [_record(i) for i in range(20, 30)], bootstrap)
    stats = await audit_once(audit, SIGNER)  # resumes from its saved state
    assert (stats.records, stats.checkpoints) == (20, 2)
    yield topic


async def test_an_untouched_topic_verifies_and_new_records_are_not_yet_signed(
    audit: AuditSettings, source: str, store: AuditStore
) -> None:
    bootstrap = audit.cluster.kafka_bootstrap
    for p in (0, 1):
        report = await verify_partition(bootstrap, store, source, p, SIGNER.verifier())
        assert (report.records_read, report.signed_size, report.checkpoints) == (30, 30, 2)
        assert report.findings == [] and not report.tampered
    await _produce(source, 1, [_record(99)], bootstrap)
    report = await verify_partition(bootstrap, store, source, 1, SIGNER.verifier())
    assert [(f.kind, f.read_offset) for f in report.findings] == [(UNCOVERED, 30)]
    assert not report.tampered


async def _tampered_copy(audit: AuditSettings, source: str) -> str:
    """Partition 0 copied with record 3 altered, 7 removed, 12 and 13 swapped and a forged
    one inserted after 18; partition 1 copied as it is."""
    bootstrap = audit.cluster.kafka_bootstrap
    copy = f"{source}-copy"
    await ensure_topics(bootstrap, [TopicSpec(copy, 2)])
    for p in (0, 1):
        records = [
            (r.key or b"", r.value or b"")
            async for r in read_partition(bootstrap, source, p, end=30)
        ]
        if p == 0:
            records[3] = (records[3][0], records[3][1][:-1] + b"!")
            records[12], records[13] = records[13], records[12]
            records.insert(19, (b"agg-forged", b"sealed-forged"))
            del records[7]
        await _produce(copy, p, records, bootstrap)
    return copy


async def test_verify_names_each_altered_removed_swapped_and_inserted_record(
    audit: AuditSettings, source: str, store: AuditStore
) -> None:
    bootstrap = audit.cluster.kafka_bootstrap
    copy = await _tampered_copy(audit, source)
    report = await verify_partition(bootstrap, store, source, 0, SIGNER.verifier(), read_topic=copy)
    assert report.tampered and report.mode == "leaves"
    found = {(f.kind, f.signed_offset, f.read_offset) for f in report.findings}
    assert (ALTERED, 3, 3) in found
    assert (REMOVED, 7, None) in found
    assert found & {(REORDERED, 12, 12), (REORDERED, 13, 11)}
    assert (INSERTED, None, 18) in found
    assert len(found) == 4, report.findings
    clean = await verify_partition(bootstrap, store, source, 1, SIGNER.verifier(), read_topic=copy)
    assert clean.findings == []

    # Without the stored leaf hashes, the signed roots still bound the first difference.
    bounded = await verify_partition(
        bootstrap,
        None,
        source,
        0,
        SIGNER.verifier(),
        read_topic=copy,
        checkpoints=list(store.checkpoints(source, 0)),
    )
    assert bounded.mode == "checkpoints" and bounded.tampered
    assert [f.kind for f in bounded.findings] == [DIFFERS]
    assert "records 0..19" in bounded.findings[0].detail

    # The command, as an operator runs it: exit status 1 and the findings as JSON.
    env = _env(audit)
    cli = [sys.executable, "-m", "backbone.cli", "audit", "verify", "--read-from", copy]
    done = await asyncio.to_thread(
        subprocess.run, [*cli, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    reports = json.loads(done.stdout)
    assert [r["tampered"] for r in reports] == [True, False]
    kinds = sorted(f["kind"] for f in reports[0]["findings"])
    assert kinds == sorted([ALTERED, REMOVED, REORDERED, INSERTED])
    text = await asyncio.to_thread(
        subprocess.run, cli, env=env, capture_output=True, text=True, timeout=120
    )
    # The same from the checkpoints the auditor published on its topic, without Cassandra's.
    published = await asyncio.to_thread(
        subprocess.run,
        [*cli, "--from-topic", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 1, published.stderr
    assert [r["tampered"] for r in json.loads(published.stdout)] == [True, False]
    assert "altered      signed at offset 3, now at offset 3" in text.stdout
    assert "removed      signed at offset 7" in text.stdout


async def test_proofs_check_offline_and_fail_when_one_byte_changes(
    audit: AuditSettings, source: str, store: AuditStore, tmp_path: Any
) -> None:
    verifier = SIGNER.verifier()
    bundle = await prove_inclusion(audit.cluster.kafka_bootstrap, store, verifier, source, 0, 17)
    assert bundle["checkpoint"]["size"] == 30 and bundle["leaf_index"] == 17
    assert "offset 17 is leaf 17" in check_bundle(json.loads(json.dumps(bundle)), verifier)
    value = bytearray(base64.b64decode(bundle["record"]["value"]))
    value[5] ^= 0x01
    bundle["record"]["value"] = base64.b64encode(bytes(value)).decode()
    with pytest.raises(ProofError):
        check_bundle(bundle, verifier)

    consistency = await prove_consistency(store, verifier, source, 1)
    assert (consistency["first"]["size"], consistency["second"]["size"]) == (20, 30)
    check_bundle(consistency, verifier)
    path = consistency["path"]
    path[0] = path[0][:-2] + ("00" if path[0][-2:] != "00" else "01")
    with pytest.raises(ProofError):
        check_bundle(consistency, verifier)

    # Offline, with the public key only: `backbone audit check` needs no Kafka or Cassandra.
    fresh = await prove_consistency(store, verifier, source, 1)
    (tmp_path / "c.json").write_text(json.dumps(fresh))
    env = {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "BACKBONE_AUDIT_PUBLIC_KEY": base64.b64encode(SIGNER.public_key).decode(),
    }
    check = [sys.executable, "-m", "backbone.cli", "audit", "check", str(tmp_path / "c.json")]
    ok = await asyncio.to_thread(subprocess.run, check, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stderr
    other = Signer(bytes(32))
    env["BACKBONE_AUDIT_PUBLIC_KEY"] = base64.b64encode(other.public_key).decode()
    bad = await asyncio.to_thread(subprocess.run, check, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "FAILED" in bad.stderr


async def test_a_checkpoint_signed_with_another_key_is_rejected(
    audit: AuditSettings, source: str, store: AuditStore
) -> None:
    latest = [cp for cp in store.checkpoints(source, 1) if isinstance(cp, Checkpoint)][-1]
    # Another key claims a longer tree: verify must not believe it.
    forged = TreeHead(source, 1, 31, os.urandom(32), 30, latest.head.time_ms + 1)
    store.save_checkpoint(Signer(bytes(32)).sign(forged))
    report = await verify_partition(
        audit.cluster.kafka_bootstrap, store, source, 1, SIGNER.verifier()
    )
    assert [f.kind for f in report.findings if f.kind != UNCOVERED] == [BAD_CHECKPOINT]
    assert report.signed_size == 30  # the forged size 31 was not taken
    assert not report.tampered


async def test_the_running_auditor_publishes_signed_checkpoints_to_its_topic(
    audit: AuditSettings, source: str, store: AuditStore
) -> None:
    bootstrap = audit.cluster.kafka_bootstrap
    auditor = Auditor(audit, SIGNER)
    stop = asyncio.Event()
    running = asyncio.create_task(auditor.run(stop))
    for batch in range(3):
        await _produce(source, 0, [_record(100 + batch * 10 + i) for i in range(10)], bootstrap)
        await asyncio.sleep(0.5)
    for _ in range(100):  # it fetches up to a second's records at a time
        if auditor.stats.records >= 30:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, 30)
    assert auditor.stats.records >= 30

    consumer = AIOKafkaConsumer(
        audit.checkpoint_topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    published = [Checkpoint.from_json(r.value) for rs in got.values() for r in rs if r.value]
    sizes = sorted(c.head.size for c in published if c.head.partition == 0)
    assert sizes[:2] == [20, 30] and sizes[-1] == 60
    for cp in published:
        SIGNER.verifier().check(cp)
    report = await verify_partition(bootstrap, store, source, 0, SIGNER.verifier())
    assert report.signed_size == 60 and report.findings == []


async def test_a_topic_made_after_the_auditor_started_is_audited_without_a_restart(
    audit: AuditSettings, source: str, store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh deployment starts the auditor before the workers have made their topics.
    monkeypatch.setattr(auditor_module, "LOOK_FOR_PARTITIONS_S", 0.3)
    bootstrap = audit.cluster.kafka_bootstrap
    late = f"{audit.cluster.topic_prefix}audit-late"
    auditor = Auditor(dataclasses.replace(audit, topics=(*audit.topics, late)), SIGNER)
    stop = asyncio.Event()
    running = asyncio.create_task(auditor.run(stop))
    try:
        await asyncio.sleep(1.0)  # running, without the late topic
        await ensure_topics(bootstrap, [TopicSpec(late, 1)])
        await _produce(late, 0, [_record(i) for i in range(5)], bootstrap)
        for _ in range(300):
            signed = [c for c in store.checkpoints(late, 0) if isinstance(c, Checkpoint)]
            if any(c.head.size == 5 for c in signed):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    report = await verify_partition(bootstrap, store, late, 0, SIGNER.verifier())
    assert report.signed_size == 5 and report.findings == [], report.findings


async def test_an_auditor_killed_mid_run_resumes_and_its_trees_stay_consistent(
    audit: AuditSettings, source: str, store: AuditStore
) -> None:
    bootstrap = audit.cluster.kafka_bootstrap
    before = [c for c in store.checkpoints(source, 1) if isinstance(c, Checkpoint)]
    first = max(before, key=lambda c: c.head.size)
    # An auditor signing every 0.2 s, SIGKILLed as soon as it has signed past the earlier
    # checkpoint (whatever it was doing then: reading, writing leaves, signing).
    await _produce(source, 1, [_record(1000 + i) for i in range(1500)], bootstrap)
    cmd = [sys.executable, "-m", "backbone.cli", "auditor"]
    auditor = await asyncio.create_subprocess_exec(
        *cmd, env=_env(audit), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            await asyncio.sleep(0.1)
            sizes = [c.head.size for c in store.checkpoints(source, 1) if isinstance(c, Checkpoint)]
            if max(sizes) > first.head.size:
                break
        auditor.send_signal(signal.SIGKILL)
        await auditor.wait()
    finally:
        if auditor.returncode is None:
            auditor.kill()
            await auditor.wait()
    await _produce(source, 1, [_record(3000 + i) for i in range(10)], bootstrap)
    stats = await audit_once(audit, SIGNER)  # a new auditor goes on from the saved state
    assert stats.checkpoints >= 1
    report = await verify_partition(bootstrap, store, source, 1, SIGNER.verifier())
    assert not report.tampered and report.findings == [], report.findings
    assert report.signed_size == report.records_read
    # The tree signed before the crash is a prefix of the one signed after it.
    bundle = await prove_consistency(store, SIGNER.verifier(), source, 1, first.head.size)
    assert bundle["second"]["size"] == report.signed_size
    check_bundle(bundle, SIGNER.verifier())
