"""Apache Cassandra, one node on loopback, from cassandra-all and its Maven dependencies."""

from __future__ import annotations

import logging

from backbone.connections import cassandra_cluster_kwargs
from backbone.settings import ClusterSettings
from deploy.maven import require_java, resolve_classpath
from deploy.process import LaunchError
from deploy.service import CONF_DIR, Service, render

logging.getLogger("cassandra").setLevel(logging.CRITICAL)


def jvm_options() -> list[str]:
    lines = (CONF_DIR / "cassandra-jvm17.options").read_text().splitlines()
    # "--add-opens a/b=ALL-UNNAMED" is two arguments on a command line, one line in the file.
    return [arg for line in lines if line.strip().startswith("-") for arg in line.split()]


# What each durability choice writes into cassandra.yaml. `group` waits up to the window
# for more writes and syncs them together (one fsync for every write in flight); its window
# bounds the latency it adds to a write.
COMMITLOG_SYNC = {
    "batch": "commitlog_sync: batch",
    "group": "commitlog_sync: group\ncommitlog_sync_group_window: 10ms",
    "periodic": "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms",
}


def commitlog_sync(choice: str) -> str:
    try:
        return COMMITLOG_SYNC[choice]
    except KeyError:
        raise LaunchError(
            f"BACKBONE_CASSANDRA_COMMITLOG_SYNC must be one of {', '.join(COMMITLOG_SYNC)}, "
            f"got {choice!r}"
        ) from None


class Cassandra(Service):
    name = "cassandra"
    start_timeout = 180.0

    @property
    def version(self) -> str:
        return self.settings.cassandra_version

    @property
    def address(self) -> str:
        return f"{self.host}:{self.settings.cassandra_port}"

    def ports(self) -> dict[str, int]:
        return {
            "native transport": self.settings.cassandra_port,
            "storage": self.settings.cassandra_storage_port,
        }

    def prepare(self) -> list[str]:
        java = require_java()
        lib = resolve_classpath("cassandra", self.version, self.settings.cache_dir)
        conf = self.home / "conf"
        render(
            "cassandra.yaml",
            conf / "cassandra.yaml",
            port=self.settings.cassandra_port,
            storage_port=self.settings.cassandra_storage_port,
            data_dir=self.home / "data",
            commitlog_sync=commitlog_sync(self.settings.cassandra_commitlog_sync),
            **self.ring_values(),
        )
        render("cassandra-logback.xml", conf / "logback.xml")
        heap = self.settings.cassandra_heap
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *jvm_options(),
            f"-Dcassandra.config=file://{conf}/cassandra.yaml",
            f"-Dlogback.configurationFile={conf}/logback.xml",
            f"-Dcassandra.storagedir={self.home}/data",
            f"-Dcassandra.logdir={self.home}",
            "-Dcassandra-foreground=yes",
            *self.gossip_flags(),
            "-cp",
            f"{conf}:{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    # --- what a node of the local ring changes (deploy/cluster.py; issue 23) ---
    def ring_values(self) -> dict[str, object]:
        return {
            "host": self.host,
            "seeds": f"{self.host}:{self.settings.cassandra_storage_port}",
            "token_replicas": 1,
        }

    def gossip_flags(self) -> list[str]:
        # A single node has nobody to gossip with; waiting for gossip only delays start.
        return ["-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.ring_delay_ms=0"]

    # --- end of the ring node's hooks ---

    def ready(self) -> bool:
        from cassandra.cluster import Cluster

        local = ClusterSettings(
            cassandra_contact_points=(self.host,), cassandra_port=self.settings.cassandra_port
        )
        cluster = Cluster(**cassandra_cluster_kwargs(local), connect_timeout=3, protocol_version=5)
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local").one()
            return row is not None
        except Exception:
            return False
        finally:
            cluster.shutdown()
