"""Apache Kafka in KRaft mode (one combined broker and controller) from Maven jars."""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess
import uuid

from backbone.connections import kafka_client_kwargs
from backbone.settings import ClusterSettings
from deploy.maven import require_java, resolve_classpath
from deploy.process import LaunchError
from deploy.service import Service, render

logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def new_cluster_id() -> str:
    # Kafka's cluster ids are url-safe base64 UUIDs; its own tool never hands out one that
    # starts with '-', which would read as a command-line flag.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class Kafka(Service):
    name = "kafka"
    start_timeout = 90.0

    @property
    def version(self) -> str:
        return self.settings.kafka_version

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    def ports(self) -> dict[str, int]:
        return {
            "broker": self.settings.kafka_port,
            "controller": self.settings.kafka_controller_port,
        }

    def prepare(self) -> list[str]:
        java = require_java()
        lib = resolve_classpath("kafka", self.version, self.settings.cache_dir)
        data_dir = self.home / "data"
        props = render(self.template, self.home / "server.properties", **self.config_values())
        log_conf = render("kafka-log4j2.yaml", self.home / "log4j2.yaml")
        base = [java, f"-Dlog4j2.configurationFile={log_conf}", "-cp", f"{lib}/*"]
        if not (data_dir / "meta.properties").exists():
            fmt = [*base, "kafka.tools.StorageTool", "format", "-t", self.cluster_id()]
            self._run_once([*fmt, "-c", str(props), *self.format_args()])
        heap = self.settings.kafka_heap
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *base[1:],
            "kafka.Kafka",
            str(props),
        ]

    # --- what a node of the local cluster changes (deploy/cluster.py; issue 23) ---
    template = "kafka.properties"

    def config_values(self) -> dict[str, object]:
        return {
            "port": self.settings.kafka_port,
            "controller_port": self.settings.kafka_controller_port,
            "data_dir": self.home / "data",
        }

    def cluster_id(self) -> str:
        return new_cluster_id()

    def format_args(self) -> list[str]:
        return []  # secure mode's SCRAM users (deploy/secure.py)

    # --- end of the cluster node's hooks ---

    def _run_once(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise LaunchError(f"formatting Kafka's storage failed:\n{tail}")

    def ready(self) -> bool:
        # The launcher's own plaintext node, whatever BACKBONE_KAFKA_SECURITY_* the shell has.
        return asyncio.run(_kafka_answers(ClusterSettings(kafka_bootstrap=self.address)))


async def _kafka_answers(bootstrap: str | ClusterSettings) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka_client_kwargs(bootstrap), request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        await admin.close()
