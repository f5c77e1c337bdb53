"""The backbone on a 3-node Kafka cluster and Cassandra ring survives the loss of a node.

Senders post messages through the API and recipients read their mailbox streams while one
Kafka node (the active controller, which also leads partitions) is SIGKILLed, then, later,
one Cassandra node; each comes back after a while. What a user relies on: every message
answered 201 reaches its recipient exactly once, each mailbox (as streamed and as paged)
is gap-free, a request during the failure gets a 2xx or a 503 with Retry-After and nothing
else, and the stack serves again by itself, without any of its processes being restarted.
The numbers (requests sent, accepted, refused, delivered, time to recover) are printed.

Not part of `make test` (the cluster's start alone takes a minute or two): `make
test-cluster` runs it (BACKBONE_CLUSTER_TESTS=1). It starts its own cluster (own state
directory and ports, on 127.0.0.1-3) and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from backbone.settings import ClusterSettings
from deploy import cluster
from deploy.cluster import Layout
from tests.integration.api_client import Party
from tests.integration.stack import Stack, own_infra_settings
from tests.integration.test_store_faults import (
    Load,
    _assert_every_accepted_message_once,
    _message_ids,
    _pairs,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("BACKBONE_CLUSTER_TESTS") != "1",
        reason="needs a 3-node cluster: `make test-cluster` (BACKBONE_CLUSTER_TESTS=1)",
    ),
    pytest.mark.timeout(1800),
]

NODES = 3
OUTAGE_S = 20.0  # long enough to see the stack serve on two nodes, not only after the return
SERVES_AGAIN_WITHIN_S = 45.0  # from the kill to the first 201 with the node still down
SETTLED_WITHIN_S = 60.0  # from the node's return to the last refusal


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    if os.environ.get("BACKBONE_CLUSTER_REUSE") == "1":
        # The cluster of `backbone infra up --nodes 3`, started if it is not running and
        # left running (its nodes are killed and restarted all the same).
        existing = Layout.from_env(NODES)
        cluster.up(existing, echo=False)
        yield existing
        return
    infra = own_infra_settings(tmp_path_factory.mktemp("cluster"))
    running = Layout(NODES, infra)
    t0 = time.monotonic()
    cluster.up(running, echo=False)
    print(f"\ncluster of {NODES} up in {time.monotonic() - t0:.1f} s")
    try:
        yield running
    finally:
        cluster.down(running, echo=False)


@pytest.fixture(scope="module")
def cluster_stack(layout: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = layout.backbone_env()
    run = uuid.uuid4().hex[:8]  # a reused cluster keeps the topics of earlier runs
    settings = ClusterSettings(
        kafka_bootstrap=layout.kafka_bootstrap,
        cassandra_contact_points=tuple(layout.hosts),
        cassandra_port=layout.infra.cassandra_port,
        keyspace=f"failover_{run}",
        topic_prefix=f"failover.{run}.",
    )
    # Three copies of everything, two in sync; LOCAL_QUORUM (the production settings).
    stack = Stack(settings, tmp_path_factory.mktemp("cluster-stack"), **env)
    t0 = time.monotonic()
    _provision(stack)
    stack.start_worker()
    stack.api.start()
    stack.wait_api_ready()
    stack.start_worker(stack.worker2)
    print(f"provisioned, 2 workers and the API ready in {time.monotonic() - t0:.1f} s")
    try:
        yield stack
    finally:
        stack.stop()


def _provision(stack: Stack, attempts: int = 3) -> None:
    """Provisioning is idempotent; on a busy machine a schema change on three nodes can
    outlast the driver's 10 s (a node that paused for a minute was seen), so it is retried."""
    for attempt in range(1, attempts + 1):
        try:
            stack.provision()
            return
        except subprocess.CalledProcessError as exc:
            if attempt == attempts:
                raise AssertionError(f"provision failed:\n{exc.stderr.decode()[-3000:]}") from exc
            print(f"provision attempt {attempt} failed: {exc.stderr.decode()[-300:]}")


@dataclass
class Answers:
    """When each send was answered, and with what (an httpx response hook)."""

    sends: list[tuple[float, int]] = field(default_factory=list)

    async def hook(self, response: httpx.Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.path == "/api/v1/Messages":
            self.sends.append((time.monotonic(), response.status_code))

    def between(self, start: float, end: float) -> list[tuple[float, int]]:
        return [(t, status) for t, status in self.sends if start <= t < end]


@dataclass
class MailboxReader:
    """One recipient's mailbox stream, read as an app would: when the stream ends (a store
    is away) or is refused with a 503, it comes back after a moment with Last-Event-ID."""

    http: httpx.AsyncClient
    who: Party
    entries: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            headers = {**self.who.headers, "Accept": "text/event-stream"}
            if self.entries:
                headers["Last-Event-ID"] = str(self.entries[-1]["index"])
            try:
                async with self.http.stream("GET", "/api/v1/Mailbox", headers=headers) as answer:
                    if answer.status_code == 200:
                        await self._read(answer)
                    elif answer.status_code == 503 and answer.headers.get("Retry-After"):
                        self.refused += 1
                    else:
                        self.failures.append(
                            f"{answer.status_code} {(await answer.aread())[:200]!r}"
                        )
            except httpx.HTTPError as exc:  # the API itself never goes away here
                self.failures.append(type(exc).__name__)
            self.reconnects += 1
            await asyncio.sleep(2)  # the stream's own `retry: 2000`

    async def _read(self, answer: httpx.Response) -> None:
        async for line in answer.aiter_lines():
            if line.startswith("data: ") and line != "data: {}":
                self.entries.append(json.loads(line[len("data: ") :]))


@dataclass
class Fault:
    """One node killed and brought back, with the moments that matter."""

    what: str
    killed_at: float
    back_at: float = 0.0  # the node answers again
    rejoined_at: float = 0.0  # Kafka: every partition fully in sync; Cassandra: all hosts up
    end: float = 0.0  # the next fault's start (or the end of the load)

    def summary(self, answers: Answers) -> dict[str, Any]:
        during = answers.between(self.killed_at, self.end)
        refused = [t for t, status in during if status != 201]
        after_kill = [t for t, status in during if status == 201]
        return {
            "fault": self.what,
            "answered": len(during),
            "accepted": len(during) - len(refused),
            "refused": len(refused),
            "first_201_after_kill_s": round(after_kill[0] - self.killed_at, 1)
            if after_kill
            else None,
            "last_refusal_after_kill_s": round(refused[-1] - self.killed_at, 1) if refused else 0.0,
            "node_back_after_s": round(self.back_at - self.killed_at, 1),
            "rejoined_after_s": round(self.rejoined_at - self.killed_at, 1),
        }


async def _kafka_partitions(layout: Layout, prefix: str) -> list[dict[str, Any]]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=layout.kafka_bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(topics)
        return [p for t in described for p in t["partitions"]]
    finally:
        await admin.close()


async def _kafka_rejoined(layout: Layout, prefix: str, within_s: float = 180) -> float:
    deadline = time.monotonic() + within_s
    lagging: object = None
    while time.monotonic() < deadline:
        try:
            partitions = await _kafka_partitions(layout, prefix)
            lagging = [p for p in partitions if len(p["isr"]) < layout.replicas]
        except Exception as exc:  # a metadata request to the node that is just starting
            lagging = exc
        if lagging == []:
            return time.monotonic()
        await asyncio.sleep(1)
    raise AssertionError(f"not in sync {within_s:.0f} s after the node's return: {lagging}")


def _cassandra_hosts_up(layout: Layout) -> int:
    from cassandra.cluster import Cluster

    driver = Cluster(layout.hosts, port=layout.infra.cassandra_port, protocol_version=5)
    try:
        driver.connect()
        return sum(1 for host in driver.metadata.all_hosts() if host.is_up)
    except Exception:
        return 0
    finally:
        driver.shutdown()


async def _cassandra_rejoined(layout: Layout, within_s: float = 180) -> float:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_cassandra_hosts_up, layout) == layout.nodes:
            return time.monotonic()
        await asyncio.sleep(1)
    raise AssertionError(f"a Cassandra node was still down {within_s:.0f} s after its return")


async def _kill(node: cluster.KafkaNode | cluster.CassandraNode, load: Load) -> float:
    """SIGKILL right after a 201: the writes behind that answer are as fresh as can be."""
    pid = node.process.pid()
    assert pid is not None, f"{node.name} is not running"
    load.just_accepted.clear()
    await asyncio.wait_for(load.just_accepted.wait(), timeout=60)
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


async def _serves_while_down(load: Load, fault: Fault) -> None:
    deadline = fault.killed_at + SERVES_AGAIN_WITHIN_S
    while not load.sent_since(fault.killed_at) and (left := deadline - time.monotonic()) > 0:
        load.just_accepted.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.just_accepted.wait(), timeout=left)
    assert load.sent_since(fault.killed_at), (
        f"{fault.what}: no 201 within {SERVES_AGAIN_WITHIN_S:.0f} s with the node down"
    )


async def _outage(load: Load, layout: Layout, fault: Fault) -> None:
    await _serves_while_down(load, fault)
    await asyncio.sleep(max(0.0, fault.killed_at + OUTAGE_S - time.monotonic()))
    await asyncio.to_thread(cluster.up, layout, False)  # starts only what is not running
    fault.back_at = time.monotonic()


def _write_numbers(path: Path, numbers: dict[str, Any]) -> None:
    path.write_text(json.dumps(numbers, indent=2))


async def test_losing_a_kafka_node_then_a_cassandra_node_under_load_loses_nothing(
    cluster_stack: Stack, layout: Layout, tmp_path: Path
) -> None:
    t_start = time.monotonic()
    answers = Answers()
    async with httpx.AsyncClient(
        base_url=cluster_stack.base_url, timeout=60, event_hooks={"response": [answers.hook]}
    ) as http:
        pairs = await _pairs(http)
        readers = [MailboxReader(http, recipient) for _, recipient in pairs]
        reading = [asyncio.create_task(r.run()) for r in readers]
        load = Load(http, pairs)
        load.start()
        faults: list[Fault] = []
        try:
            await asyncio.sleep(5)
            controller = cluster.active_controller(layout)
            assert controller is not None, "no Kafka node says it is the active controller"
            partitions = await _kafka_partitions(layout, cluster_stack.cluster.topic_prefix)
            leads = sum(1 for p in partitions if p["leader"] == controller)
            victim = layout.kafka()[controller - 1]
            what = f"SIGKILL {victim.name} (active controller, leads {leads}/{len(partitions)})"
            kafka = Fault(what, await _kill(victim, load))
            faults.append(kafka)
            await _outage(load, layout, kafka)
            kafka.rejoined_at = await _kafka_rejoined(layout, cluster_stack.cluster.topic_prefix)
            await asyncio.sleep(10)

            # The first contact point: the driver's control connection is likely on it.
            node = layout.cassandra()[0]
            store = Fault(f"SIGKILL {node.name}", await _kill(node, load))
            kafka.end = store.killed_at
            faults.append(store)
            await _outage(load, layout, store)
            store.rejoined_at = await _cassandra_rejoined(layout)
            await asyncio.sleep(10)
            store.end = time.monotonic()
        finally:
            await load.stop()

        accepted = {m for ids in load.accepted.values() for m in ids}
        # The streams catch up with everything accepted (or the wait ends and the checks
        # below say what is missing).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            streamed = {m for r in readers for m in _message_ids(r.entries)}
            if accepted <= streamed:
                break
            await asyncio.sleep(0.5)
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)

        streamed_ids = [m for r in readers for m in _message_ids(r.entries)]
        numbers = {
            "requests_sent": sum(load.statuses.values()) + len(load.failures),
            "accepted_201": load.statuses[201],
            "refused_503": load.statuses[503],
            "other_answers": {s: c for s, c in load.statuses.items() if s not in (201, 503)},
            "delivered_through_streams": len(set(streamed_ids) & accepted),
            "stream_reconnects": sum(r.reconnects for r in readers),
            "stream_refusals_503": sum(r.refused for r in readers),
            "faults": [f.summary(answers) for f in faults],
            "refusal_reasons": dict(load.unavailable),
            "test_s": round(time.monotonic() - t_start, 1),
        }
        print("\n" + json.dumps(numbers, indent=2))
        _write_numbers(tmp_path / "failover.json", numbers)

        assert not load.failures, load.failures[:5]
        assert set(load.statuses) <= {201, 503}, load.statuses
        for reader in readers:
            assert not reader.failures, reader.failures[:5]
            indexes = [e["index"] for e in reader.entries]
            assert indexes == list(range(1, len(indexes) + 1)), "a streamed mailbox has a gap"
        doubled = [m for m, c in Counter(streamed_ids).items() if c > 1]
        assert not doubled, f"streamed twice: {doubled[:3]}"
        assert accepted <= set(streamed_ids), (
            f"{len(accepted - set(streamed_ids))} messages answered 201 never streamed"
        )
        for fault in faults:
            summary = fault.summary(answers)
            last = summary["last_refusal_after_kill_s"]
            assert last <= summary["node_back_after_s"] + SETTLED_WITHIN_S, summary
        # The same, read page by page: every message once, no gap.
        await _assert_every_accepted_message_once(http, load, pairs)
