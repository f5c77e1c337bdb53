"""The local launcher's own behaviour, without starting Kafka or Cassandra."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from backbone.settings import InfraSettings
from deploy import infra
from deploy.cassandra import Cassandra, commitlog_sync, jvm_options
from deploy.kafka import new_cluster_id
from deploy.maven import require_java, resolve_classpath
from deploy.process import LaunchError, require_free_ports
from deploy.service import render
from localproc.process import ManagedProcess


def test_taken_port_is_named_in_the_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LaunchError, match=f"port broker {port} is already in use"):
            require_free_ports("kafka", {"broker": port})


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        settings = InfraSettings(state_dir=tmp_path, kafka_port=sock.getsockname()[1])
        with pytest.raises(LaunchError, match="kafka cannot start"):
            infra.up(settings, echo=False)
    assert not list(tmp_path.rglob("*.pid"))


def test_missing_java_and_maven_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LaunchError, match=r"`java` was not found.*JDK 17"):
        require_java()
    with pytest.raises(LaunchError, match=r"`mvn` was not found.*Maven"):
        resolve_classpath("kafka", "4.1.1", tmp_path)


def test_managed_process_start_detect_stop(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path, marker=str(tmp_path))
    assert proc.pid() is None
    # The marker must be on the command line for the process to count as ours.
    pid = proc.start([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)])
    assert proc.pid() == pid
    assert proc.stop(timeout=10) is True
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert not _running(pid)
    assert proc.stop() is False  # stopping twice is harmless


def test_stale_pid_file_of_a_foreign_process_is_not_ours(tmp_path: Path) -> None:
    proc = ManagedProcess("kafka", tmp_path, marker=str(tmp_path))
    tmp_path.mkdir(exist_ok=True)
    proc.pid_file.write_text(str(os.getpid()))  # alive, but its command line lacks the marker
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    proc = ManagedProcess("stubborn", tmp_path, marker=str(tmp_path))
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pid = proc.start([sys.executable, "-c", code, str(tmp_path)])
    assert proc.pid() == pid
    assert proc.stop(timeout=1) is True
    assert not _running(pid)


def test_templates_render_completely(tmp_path: Path) -> None:
    for name, values in {
        "kafka.properties": {"port": 1, "controller_port": 2, "data_dir": tmp_path},
        "cassandra.yaml": {
            "port": 1,
            "storage_port": 2,
            "data_dir": tmp_path,
            "commitlog_sync": commitlog_sync("group"),
            # the single node's host and seeds (a node of the local ring has its own)
            **Cassandra(InfraSettings(state_dir=tmp_path)).ring_values(),
        },
    }.items():
        text = render(name, tmp_path / name, **values).read_text()
        assert "${" not in text
        assert "127.0.0.1" in text  # loopback only


def test_cassandra_jvm_options_are_split_into_arguments() -> None:
    opts = jvm_options()
    i = opts.index("--add-opens")
    assert opts[i + 1].endswith("=ALL-UNNAMED")
    assert all(" " not in o for o in opts)


def test_cassandra_command_line_uses_our_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = InfraSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    lib = settings.cache_dir / f"cassandra-{settings.cassandra_version}" / "lib"
    lib.mkdir(parents=True)
    (lib / ".complete").write_text("x")  # a cached classpath: no Maven call
    argv = Cassandra(settings).prepare()
    assert argv[-1] == "org.apache.cassandra.service.CassandraDaemon"
    assert f"-Xmx{settings.cassandra_heap}" in argv
    assert any(a.startswith("-Dcassandra.config=file://") for a in argv)


def test_cluster_ids_never_look_like_flags() -> None:
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("choice", ["batch", "group", "periodic"])
def test_the_commit_log_durability_is_written_into_cassandra_yaml(
    tmp_path: Path, choice: str
) -> None:
    target = render(
        "cassandra.yaml",
        tmp_path / "cassandra.yaml",
        port=9042,
        storage_port=7000,
        data_dir=tmp_path,
        commitlog_sync=commitlog_sync(choice),
        **Cassandra(InfraSettings(state_dir=tmp_path)).ring_values(),
    )
    assert f"commitlog_sync: {choice}" in target.read_text().splitlines()


def test_an_unknown_commit_log_durability_is_refused_by_name() -> None:
    with pytest.raises(LaunchError, match="BACKBONE_CASSANDRA_COMMITLOG_SYNC"):
        commitlog_sync("sometimes")


def test_the_local_node_acknowledges_only_synced_writes_by_default() -> None:
    # `periodic` lost writes acknowledged in the last 10 s when the node was killed.
    assert InfraSettings().cassandra_commitlog_sync in ("batch", "group")
