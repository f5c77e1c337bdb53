"""The backbone's own processes for a test run: provisioning, a faust worker and the API,
started with the same commands production uses (`backbone worker`, `backbone api`)."""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from backbone.settings import ClusterSettings, InfraSettings
from deploy.backbone import worker_ready
from localproc.ports import free_port
from localproc.process import ManagedProcess

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-0123456789"
START_TIMEOUT_S = 120.0


def own_infra_settings(state_dir: Path, **overrides: Any) -> InfraSettings:
    """Kafka and Cassandra of a test's own (to kill, secure or cluster them) beside the
    suite's: free ports, its own state directory, small heaps, and the jars and commit-log
    mode of the suite's stores."""
    shared = InfraSettings.from_env()
    return InfraSettings(
        state_dir=state_dir,
        cache_dir=shared.cache_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        cassandra_port=free_port(),
        cassandra_storage_port=free_port(),
        kafka_heap="512m",
        cassandra_heap="1g",
        cassandra_commitlog_sync=shared.cassandra_commitlog_sync,
        **overrides,
    )


def stack_process(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> ManagedProcess:
    """A process of the test run, logging to `workdir/<name>.log`, run from where the tests
    run (so that `python -m` imports this checkout)."""
    return ManagedProcess(name, workdir, argv=argv, env=env, cwd=Path.cwd(), grace_s=60)


class Stack:
    def __init__(self, cluster: ClusterSettings, workdir: Path, **overrides: str) -> None:
        self.cluster = cluster
        self.master_key_b64 = base64.b64encode(secrets.token_bytes(32)).decode()
        self.signing_seed = secrets.token_bytes(32)
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "BACKBONE_STATE_DIR": str(workdir / "state"),
            "BACKBONE_KAFKA_BOOTSTRAP": cluster.kafka_bootstrap,
            "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(cluster.cassandra_contact_points),
            "BACKBONE_CASSANDRA_PORT": str(cluster.cassandra_port),
            "BACKBONE_CASSANDRA_KEYSPACE": cluster.keyspace,
            "BACKBONE_TOPIC_PREFIX": cluster.topic_prefix,
            "BACKBONE_MASTER_KEY": self.master_key_b64,
            "BACKBONE_SIGNING_SEED": base64.b64encode(self.signing_seed).decode(),
            "BACKBONE_CLIENTS": f"{CLIENT_ID}:{CLIENT_SECRET}",
            "BACKBONE_API_PORT": str(self.api_port),
            "BACKBONE_WORKER_METRICS_PORT": "0",
            "BACKBONE_PARTITIONS": "4",
            "BACKBONE_COMMAND_TIMEOUT": "5",
            "BACKBONE_MAX_FILE_BYTES": str(1024 * 1024),  # the limit test stays small
            # A SIGKILLed process keeps its last log lines: what it did before it died.
            "PYTHONUNBUFFERED": "1",
            # A killed worker's partitions move to a new one after this (the crash tests).
            "BACKBONE_WORKER_SESSION_TIMEOUT": "6",
            **overrides,
        }
        cli = [sys.executable, "-m", "backbone.cli"]
        self.worker = stack_process(
            "worker",
            [*cli, "worker", "--data-dir", str(workdir / "worker-data")],
            self.env,
            workdir,
        )
        self.api = stack_process("api", [*cli, "api"], self.env, workdir)
        # A second worker, started on demand: the scale-out tests.
        self.worker2 = stack_process(
            "worker2",
            [*cli, "worker", "--data-dir", str(workdir / "worker2-data")],
            self.env,
            workdir,
        )
        # A second API replica, started on demand: commands from both meet in one decider.
        self.api2_port = free_port()
        self.api2 = stack_process(
            "api2", [*cli, "api", "--port", str(self.api2_port)], self.env, workdir
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def provision(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "backbone.cli", "provision"],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.provision()
        self.start_worker()
        self.api.start()
        self.wait_api_ready()

    def start_worker(self, worker: ManagedProcess | None = None) -> None:
        worker = worker or self.worker
        worker.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not worker_ready(worker.log_file, worker.log_offset):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready:\n{worker.log_tail()}")
            time.sleep(0.2)

    def second_api(self) -> str:
        """Start (once) a second API process; returns its base URL."""
        url = f"http://127.0.0.1:{self.api2_port}"
        if self.api2.pid() is None:
            self.api2.start()
            self.wait_api_ready(self.api2, url)
        return url

    def wait_api_ready(self, api: ManagedProcess | None = None, url: str | None = None) -> None:
        api, url = api or self.api, url or self.base_url
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            api.check_alive()
            try:
                if httpx.get(f"{url}/ready", timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"api not ready:\n{api.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.worker2.stop()
        self.api2.stop()
        self.api.stop()
        self.worker.stop()


def own_stack(
    cluster: ClusterSettings,
    cassandra_session: Any,
    tmp_path_factory: Any,
    name: str,
    **overrides: str,
) -> Iterator[Stack]:
    """A stack on keyspace `<run's>_<name>` and topics `<run's prefix><name>.` (`overrides`:
    environment for its processes), its keyspace dropped at the end: for a test that reads
    or rebuilds a whole keyspace."""
    own = dataclasses.replace(
        cluster,
        keyspace=f"{cluster.keyspace}_{name}",
        topic_prefix=f"{cluster.topic_prefix}{name}.",
    )
    running = Stack(own, tmp_path_factory.mktemp(f"{name}-stack"), **overrides)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {own.keyspace}", timeout=60)
