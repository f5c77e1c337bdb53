"""`backbone infra up --nodes N`: a Kafka cluster and a Cassandra ring on this machine.

Node i listens on 127.0.0.i (Linux routes all of 127/8 to the loopback interface), every node
on the same ports, so that a client needs one port per store and a list of hosts, as with
a real cluster. The Kafka nodes are brokers and controllers at once (a controller quorum of
N); the Cassandra nodes are all seeds and do not bootstrap, so that a fresh ring forms from
N nodes started together instead of one after the other. The cluster keeps its state under
`<state dir>/cluster` and uses ports of its own, so the one-node infrastructure of `make up`
can run beside it.

What the backbone needs to use it is `Layout.backbone_env()`: the hosts, and the
replication the cluster can honour (3 copies, 2 in sync, LOCAL_QUORUM).
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from backbone.settings import InfraSettings
from deploy.cassandra import Cassandra
from deploy.infra import ServiceStatus, start_and_wait, status_of, stop_all
from deploy.kafka import Kafka, new_cluster_id
from deploy.process import LaunchError
from deploy.service import Service

MAX_NODES = 9  # 127.0.0.1 .. 127.0.0.9: enough for trying things, few enough for a laptop
DATACENTER = "datacenter1"  # what Cassandra's SimpleSnitch calls the one datacenter


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Layout:
    """How many nodes, and the settings every node shares (ports, heaps, state directory)."""

    nodes: int
    infra: InfraSettings

    def __post_init__(self) -> None:
        if not 2 <= self.nodes <= MAX_NODES:
            raise LaunchError(f"--nodes must be between 2 and {MAX_NODES} for a local cluster")

    @classmethod
    def from_env(cls, nodes: int) -> Layout:
        """The cluster beside the one-node infrastructure: its own state directory, ports
        and small heaps (BACKBONE_CLUSTER_* override them)."""
        base = InfraSettings.from_env()
        infra = replace(
            base,
            state_dir=base.state_dir / "cluster",
            kafka_port=_env_int("BACKBONE_CLUSTER_KAFKA_PORT", 19092),
            kafka_controller_port=_env_int("BACKBONE_CLUSTER_KAFKA_CONTROLLER_PORT", 19093),
            cassandra_port=_env_int("BACKBONE_CLUSTER_CASSANDRA_PORT", 19042),
            cassandra_storage_port=_env_int("BACKBONE_CLUSTER_CASSANDRA_STORAGE_PORT", 17000),
            kafka_heap=os.environ.get("BACKBONE_CLUSTER_KAFKA_HEAP", "").strip() or "512m",
            cassandra_heap=os.environ.get("BACKBONE_CLUSTER_CASSANDRA_HEAP", "").strip() or "1g",
        )
        return cls(nodes, infra)

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.{node}" for node in range(1, self.nodes + 1)]

    @property
    def replicas(self) -> int:
        return min(3, self.nodes)

    @property
    def min_insync(self) -> int:
        # One copy may be lost while writes go on; with 3 copies, 2 must have every write.
        return max(1, self.replicas - 1)

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"{host}:{self.infra.kafka_port}" for host in self.hosts)

    def kafka(self) -> list[KafkaNode]:
        return [KafkaNode(self, node) for node in range(1, self.nodes + 1)]

    def cassandra(self) -> list[CassandraNode]:
        return [CassandraNode(self, node) for node in range(1, self.nodes + 1)]

    def services(self) -> list[Service]:
        return [*self.kafka(), *self.cassandra()]

    def pids(self) -> list[int]:
        return [pid for svc in self.services() if (pid := svc.process.pid()) is not None]

    def backbone_env(self) -> dict[str, str]:
        """The settings that point the backbone's processes at this cluster."""
        return {
            "BACKBONE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(self.hosts),
            "BACKBONE_CASSANDRA_PORT": str(self.infra.cassandra_port),
            "BACKBONE_KAFKA_REPLICATION_FACTOR": str(self.replicas),
            "BACKBONE_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync),
            "BACKBONE_CASSANDRA_REPLICATION": f"{DATACENTER}:{self.replicas}",
            "BACKBONE_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
            "BACKBONE_CASSANDRA_SERIAL_CONSISTENCY": "LOCAL_SERIAL",
        }


class KafkaNode(Kafka):
    template = "kafka-cluster.properties"
    start_timeout = 180.0  # N JVMs start at once on a small machine

    def __init__(self, layout: Layout, node: int) -> None:
        self.name = f"kafka-{node}"
        self.layout = layout
        self.node = node
        self.host = layout.hosts[node - 1]
        super().__init__(layout.infra)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.settings.kafka_port}"

    def config_values(self) -> dict[str, object]:
        controller_port = self.settings.kafka_controller_port
        voters = ",".join(f"{n}@{h}:{controller_port}" for n, h in enumerate(self.layout.hosts, 1))
        return {
            "node_id": self.node,
            "voters": voters,
            "host": self.host,
            "port": self.settings.kafka_port,
            "controller_port": controller_port,
            "data_dir": self.home / "data",
            "replicas": self.layout.replicas,
            "min_insync": self.layout.min_insync,
        }

    def cluster_id(self) -> str:
        # Every node's storage is formatted with the one id of the cluster it belongs to.
        path = self.settings.state_dir / "kafka-cluster-id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def ready(self) -> bool:
        return asyncio.run(_broker_registered(self.address, self.node))


async def _broker_registered(address: str, node: int) -> bool:
    """True once the node answers and the cluster's metadata lists it as a broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    from backbone.connections import kafka_client_kwargs
    from backbone.settings import ClusterSettings

    local = ClusterSettings(kafka_bootstrap=address)  # plaintext, whatever the shell sets
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(local), request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return any(b["node_id"] == node for b in cluster.get("brokers", []))
    except Exception:
        return False
    finally:
        await admin.close()


class CassandraNode(Cassandra):
    start_timeout = 300.0

    def __init__(self, layout: Layout, node: int) -> None:
        self.name = f"cassandra-{node}"
        self.layout = layout
        self.node = node
        self.host = layout.hosts[node - 1]
        super().__init__(layout.infra)

    def ring_values(self) -> dict[str, object]:
        port = self.settings.cassandra_storage_port
        return {
            "host": self.host,
            # Every node a seed: none waits for another to be up before it may start.
            "seeds": ",".join(f"{h}:{port}" for h in self.layout.hosts),
            "token_replicas": self.layout.replicas,
        }

    def gossip_flags(self) -> list[str]:
        # A fresh ring of seeds that do not bootstrap: nothing to stream, so no waiting for
        # gossip to settle (the nodes learn of each other within seconds anyway).
        return [
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=1000",
            "-Dcassandra.auto_bootstrap=false",
        ]


def up(layout: Layout, echo: bool = True) -> list[ServiceStatus]:
    """Start the nodes that are not running, wait until each answers and the ring has
    every node; idempotent, so it also brings back a node that was killed."""
    _nodes_file(layout).parent.mkdir(parents=True, exist_ok=True)
    _nodes_file(layout).write_text(str(layout.nodes))
    start_and_wait(layout.services(), echo)
    wait_ring(layout)
    return status(layout)


def wait_ring(layout: Layout, timeout: float = 120.0) -> None:
    """Wait until every Cassandra node knows every other one as a normal member."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        views = {node.host: _ring_view(layout, node.host) for node in layout.cassandra()}
        if all(len(peers) == layout.nodes - 1 for peers in views.values()):
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"the Cassandra ring did not form within {timeout:.0f}s: {views}")
        time.sleep(1)


def _ring_view(layout: Layout, host: str) -> set[str]:
    from cassandra.cluster import Cluster

    from backbone.connections import cassandra_cluster_kwargs
    from backbone.settings import ClusterSettings

    local = ClusterSettings(
        cassandra_contact_points=(host,), cassandra_port=layout.infra.cassandra_port
    )
    cluster = Cluster(**cassandra_cluster_kwargs(local), connect_timeout=3, protocol_version=5)
    try:
        session = cluster.connect()
        rows = session.execute("SELECT peer, tokens FROM system.peers_v2")
        return {str(row.peer) for row in rows if row.tokens}
    except Exception:
        return set()
    finally:
        cluster.shutdown()


def down(layout: Layout, echo: bool = True) -> None:
    stop_all(layout.services(), echo)


def status(layout: Layout) -> list[ServiceStatus]:
    return status_of(layout.services())


ACTIVE_CONTROLLER = re.compile(
    rb"\[QuorumController id=(\d+)\] Becoming the active controller at epoch (\d+)"
)


def active_controller(layout: Layout) -> int | None:
    """The Kafka node that leads the controller quorum now, as the nodes' logs tell it: the
    one that took the highest epoch (a node that is down may have led an older one)."""
    best: tuple[int, int] | None = None
    for node in layout.kafka():
        try:
            text = node.process.log_file.read_bytes()
        except FileNotFoundError:
            continue
        for match in ACTIVE_CONTROLLER.finditer(text):
            epoch, node_id = int(match[2]), int(match[1])
            if best is None or epoch > best[0]:
                best = (epoch, node_id)
    return best[1] if best else None


def _nodes_file(layout: Layout) -> Path:
    return layout.infra.state_dir / "nodes"


def started_nodes() -> int | None:
    """How many nodes the last `infra up --nodes N` started here (for down and status)."""
    path = Layout.from_env(2).infra.state_dir / "nodes"
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
