"""The worker's CPU per message when it projects a backlog (events waiting on the log).

    python -m bench.projector_backlog [--messages 3000] [--identities 200] [--code DIR]

Writes a synthetic log of 1-recipient messages (a MessageSent and its Reply on `events`,
as bench/replay.py does, without mailbox entries) on topics and a keyspace of its own,
against the running Kafka and Cassandra, then starts one worker (`backbone worker`, from
the code on PYTHONPATH) on them and samples its CPU until every message is in the read
model and the worker has gone quiet. Reports the worker's CPU per message, less what a
worker spends starting and idling on an empty log (measured first). A backlog is where one
pass per poll matters: the projector finds many records ready at once. `--code DIR` runs
the worker from another checkout (a `git worktree` of the commit to compare with).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from backbone.settings import ClusterSettings
from bench.memory import cpu_seconds
from bench.replay import _clean_up, log_env, write_log
from bench.results import machine_line
from store.cassandra import connect


def _env(cluster: ClusterSettings, prefix: str, keyspace: str, master_b64: str) -> dict[str, str]:
    return {
        **log_env(cluster, prefix, keyspace, master_b64),
        "BACKBONE_APP_ID": f"{prefix}workers",
        "BACKBONE_WORKER_METRICS_PORT": "0",
    }


def _count(cluster: ClusterSettings, keyspace: str) -> int:
    c, session = connect(cluster, keyspace)
    try:
        return int(session.execute("SELECT count(*) FROM messages", timeout=60).one()[0])
    finally:
        c.shutdown()


def _worker(env: dict[str, str], data: Path, code: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "backbone.cli", "worker", "--data-dir", str(data)]
    return subprocess.Popen(
        argv,
        env={**env, "PYTHONPATH": str(code)},
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _until_quiet(pid: int, done: object, settle_s: float = 6.0, timeout_s: float = 900) -> float:
    """Samples the process's CPU until `done()` and no CPU to speak of for `settle_s`."""
    start = time.monotonic()
    quiet_since: float | None = None
    last = cpu_seconds(pid) or 0.0
    while time.monotonic() - start < timeout_s:
        time.sleep(1.0)
        now = cpu_seconds(pid) or last
        busy, last = now - last, now
        if busy < 0.05 and done():  # type: ignore[operator]
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return last
        else:
            quiet_since = None
    raise TimeoutError("the worker did not finish the backlog")


def main(args: argparse.Namespace) -> None:
    cluster = ClusterSettings.from_env()
    run = uuid.uuid4().hex[:8]
    prefix, keyspace = f"bench.backlog.{run}.", f"bench_backlog_{run}"
    master_b64 = base64.b64encode(os.urandom(32)).decode()
    env = _env(cluster, prefix, keyspace, master_b64)
    subprocess.run(
        [sys.executable, "-m", "backbone.cli", "provision"],
        env=env,
        check=True,
        capture_output=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        # The worker's own cost on an empty log: start-up, recovery, timers.
        idle = _worker(env, Path(tmp) / "idle", args.code)
        try:
            time.sleep(args.idle_s)
            idle_cpu = cpu_seconds(idle.pid) or 0.0
        finally:
            _stop(idle)
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        records = asyncio.run(
            write_log(
                cluster,
                prefix,
                keyspace,
                master_b64,
                args.messages,
                args.identities,
                args.partitions,
                entries=False,
            )
        )
        write_s = time.monotonic() - t0
        worker = _worker(env, Path(tmp) / "busy", args.code)
        t1 = time.monotonic()
        try:
            cpu = _until_quiet(worker.pid, lambda: _count(cluster, keyspace) >= args.messages)
            wall = time.monotonic() - t1
        finally:
            _stop(worker)
    asyncio.run(_clean_up(cluster, prefix, [keyspace]))
    per = (cpu - idle_cpu) / args.messages * 1e3
    print(machine_line())
    print(
        f"PROJECTOR BACKLOG ({args.messages} messages, {records} records, written in "
        f"{write_s:.1f} s; load {load0:.1f} -> {os.getloadavg()[0]:.1f})\n"
        f"worker CPU {cpu:.1f} s in {wall:.0f} s (start-up and idle, on an empty log for "
        f"{args.idle_s:.0f} s: {idle_cpu:.1f} s)\n"
        f"worker CPU per message, start-up taken off: {per:.2f} ms"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="run the worker from here")
    main(parser.parse_args())


if __name__ == "__main__":
    cli()
