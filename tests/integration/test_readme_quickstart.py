"""The README's walkthroughs, run as written (issue 20): the blocks marked
`<!-- readme-test: ... -->` are extracted and run against a backbone of their own, started
the way `make up` starts one (the local OAuth client's secret made in its state directory),
on this test run's Kafka and Cassandra.

The Connector walkthrough runs twice in a row, as a newcomer who pastes it again would:
both times the message must arrive live at the webhook listener, and the second run must
keep every key, identity and data directory of the first.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cassandra.cluster import Session

from backbone.settings import ClusterSettings
from connector.store import SqliteStore
from localproc.ports import free_port
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\n```\w+\n(.*?)```", re.DOTALL)
RUN_TIMEOUT_S = 120


def readme_blocks(kind: str) -> list[str]:
    found = [code for name, code in BLOCK.findall((REPO / "README.md").read_text()) if name == kind]
    assert found, f"the README has no block marked readme-test: {kind}"
    return found


@pytest.fixture(scope="module")
def readme_stack(
    cluster_settings: ClusterSettings,
    kafka_topics: None,
    cassandra_session: Session,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A backbone like `make up`'s: no BACKBONE_CLIENTS, so the `local` client's secret is
    made in the state directory. Its own keyspace and topics (under this run's prefix, which
    the session removes), so the session's other stack is not disturbed."""
    cluster = dataclasses.replace(
        cluster_settings,
        keyspace=f"{cluster_settings.keyspace}_readme",
        topic_prefix=f"{cluster_settings.topic_prefix}readme.",
    )
    stack = Stack(cluster, tmp_path_factory.mktemp("readme-stack"), BACKBONE_CLIENTS="")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {cluster.keyspace}", timeout=60)


def _env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "BACKBONE_"))}
    return {
        **env,
        # `connector` from the interpreter running the tests, should it not be .venv's.
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        "BACKBONE_STATE_DIR": stack.env["BACKBONE_STATE_DIR"],
        **extra,
    }


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def test_the_python_snippet_creates_an_identity(readme_stack: Stack, tmp_path: Path) -> None:
    (code,) = readme_blocks("python")
    snippet = tmp_path / "first_identity.py"
    snippet.write_text(code)
    env = _env(readme_stack, BACKBONE_URL=readme_stack.base_url)
    done = subprocess.run(
        [sys.executable, str(snippet)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("did:e:localhost:dids:"), done.stdout


def test_the_connector_walkthrough_runs_twice_and_the_message_arrives_live(
    readme_stack: Stack, tmp_path: Path
) -> None:
    script = "\n".join(readme_blocks("connector"))
    stop = readme_blocks("connector")[-1]
    demo = tmp_path / "demo"
    env = _env(
        readme_stack,
        CONNECTOR_BACKBONE_URL=readme_stack.base_url,
        CONNECTOR_DEMO_DIR=str(demo),
        A_PORT=str(free_port()),
        B_PORT=str(free_port()),
        HOOK_PORT=str(free_port()),
    )
    seen: dict[str, bytes] = {}
    addresses: dict[str, list[str]] = {}
    try:
        for run in (1, 2):
            t0 = time.monotonic()
            done = _run(script, env)
            took = time.monotonic() - t0
            output = (
                f"run {run} ({took:.1f}s), exit {done.returncode}\n--- stdout\n"
                f"{done.stdout}\n--- stderr\n{done.stderr}"
            )
            assert done.returncode == 0, output
            # The listener printed the message, decrypted by B's Connector, as it arrived.
            assert '"type": "MessageReceived"' in done.stdout, output
            assert '"text": "hello B, it is' in done.stdout, output
            incoming = [line for line in done.stdout.splitlines() if '"content":{"text"' in line]
            assert len(incoming) == run, output  # B holds every message of every run
            if run == 2:  # contacts already: no second request
                assert '"status":"Pending"' not in done.stdout, output
                assert "has its identity already" in done.stdout, output
                assert "exists: kept it" in done.stdout, output

            # Keys private and never replaced; one identity per organization, the same one.
            for path in [*sorted(demo.glob("*.key")), demo / "hook.secret"]:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
                assert seen.setdefault(path.name, path.read_bytes()) == path.read_bytes()
            assert stat.S_IMODE(demo.stat().st_mode) == 0o700
            for org in ("a", "b"):
                database = demo / f"org-{org}" / "connector.sqlite"
                assert stat.S_IMODE(database.stat().st_mode) == 0o600
                store = SqliteStore(database)
                found = [row.address for row in store.identities()]
                store.close()
                assert len(found) == 1
                assert addresses.setdefault(org, found) == found
                # Stopped by the last block: nothing of ours left running.
                assert not (demo / f"org-{org}" / "connector.pid").exists(), output
    finally:
        if demo.exists():  # a failed run may have left the Connectors up
            _run(f"DEMO={demo}\n{stop}", env)


def test_a_connector_with_a_wrong_client_secret_says_so_and_is_not_healthy(
    readme_stack: Stack, tmp_path: Path
) -> None:
    """Issue 20, finding 4: a Connector whose client secret the backbone rejects looked
    healthy while every call failed and its log said only that the stream dropped."""
    secret = Path(readme_stack.env["BACKBONE_STATE_DIR"]) / "secrets" / "client.secret"
    port = free_port()
    env = _env(
        readme_stack,
        CONNECTOR_BACKBONE_URL=readme_stack.base_url,
        CONNECTOR_DATA_DIR=str(tmp_path / "org"),
        CONNECTOR_STORAGE_KEY_FILE=str(tmp_path / "org.key"),
        CONNECTOR_API_KEY="k" * 32,
        CONNECTOR_PORT=str(port),
    )

    def connector(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "connector.cli", *args],
            cwd=REPO,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=90,
        )

    assert connector("new-key", str(tmp_path / "org.key")).returncode == 0
    missing = connector("init")
    assert missing.returncode == 2 and "CONNECTOR_CLIENT_SECRET is not set" in missing.stderr
    assert not (tmp_path / "org").exists()  # the refusal wrote nothing
    wrong = connector("init", CONNECTOR_CLIENT_SECRET="not-the-secret-0123456789")
    assert wrong.returncode == 2 and "invalid_client" in wrong.stderr, wrong.stderr
    made = connector("init", CONNECTOR_CLIENT_SECRET=secret.read_text().strip())
    assert made.returncode == 0, made.stderr
    try:
        started = connector("start", CONNECTOR_CLIENT_SECRET="not-the-secret-0123456789")
        assert started.returncode == 1, started.stdout + started.stderr
        assert "backboneAuthentication" in started.stdout + started.stderr
        assert "invalid_client" in started.stdout + started.stderr
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert answer.status_code == 503
        report = answer.json()
        assert report["isHealthy"] is False
        assert report["services"] == {
            "database": "healthy",
            "backboneConnection": "healthy",
            "backboneAuthentication": "unhealthy",
        }
        status = connector("status", CONNECTOR_CLIENT_SECRET="not-the-secret-0123456789")
        assert status.returncode == 1, status.stdout + status.stderr
        assert "health: UNHEALTHY" in status.stdout
        assert "backboneAuthentication   unhealthy  (the backbone refused" in status.stdout
        log = (tmp_path / "org" / "connector.log").read_text()
        assert "mailbox stream dropped (the backbone refused the Connector's client" in log
        assert "not-the-secret" not in log
    finally:
        assert connector("stop").returncode == 0
