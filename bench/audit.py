"""What the auditor costs: CPU per record it covers, when catching up and when following.

    python -m bench.audit [--records 20000] [--rate 200] [--seconds 20] [--partitions 12]

Runs `backbone auditor` as its own process (as in production) against the running Kafka
and Cassandra, on topics and a keyspace of its own (removed afterwards), and reads the
process's CPU time from /proc:

- catch-up: `--records` records (300 to 1,500 bytes, like sealed envelopes) spread over
  the partitions of `events` and `mailbox-entries`, then `backbone auditor --once`; the
  CPU of a `--once` over empty topics (start-up, connecting) is subtracted;
- following: the auditor runs, idle first (its idle CPU), then `--rate` records/s arrive
  for `--seconds`; its CPU over that time, one checkpoint interval included, per record.

Then compares with the write path: a 1-recipient message is about 27 ms of CPU across
the processes and 9 Kafka records (command, MessageSent, Reply, two mailbox entries, the
reply, two notices, a changelog write), 4 of them on the audited topics (the two events
and the two mailbox entries). Target: the auditor under 5% of the write path.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from backbone.connections import kafka_client_kwargs
from backbone.settings import ClusterSettings
from bench.results import machine_line
from store.topics import TopicSpec, ensure_topics

WRITE_PATH_MS_PER_MESSAGE = 27.0
RECORDS_PER_MESSAGE = 9
AUDITED_PER_MESSAGE = 4
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def produce(
    bootstrap: str, topics: list[str], partitions: int, n: int, rate: float | None = None
) -> None:
    producer = AIOKafkaProducer(**kafka_client_kwargs(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    try:
        start = time.monotonic()
        pending = []
        for i in range(n):
            topic = topics[i % len(topics)]
            key = uuid.uuid4().hex.encode()
            value = os.urandom(random.randint(300, 1500))
            pending.append(await producer.send(topic, value, key=key, partition=i % partitions))
            if rate is not None:
                due = start + (i + 1) / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def auditor_env(
    cluster: ClusterSettings, prefix: str, keyspace: str, interval: float
) -> dict[str, str]:
    return {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": cluster.kafka_bootstrap,
        "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(cluster.cassandra_contact_points),
        "BACKBONE_CASSANDRA_PORT": str(cluster.cassandra_port),
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_AUDIT_KEYSPACE": keyspace,
        "BACKBONE_AUDIT_SEED": base64.b64encode(os.urandom(32)).decode(),
        "BACKBONE_AUDIT_INTERVAL": str(interval),
        "BACKBONE_LOG_LEVEL": "warning",
    }


def run_once(env: dict[str, str]) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and records audited of one `backbone auditor --once`."""
    argv = [sys.executable, "-m", "backbone.cli", "auditor", "--once"]
    started = time.monotonic()
    before = os.times()
    done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    found = re.search(r"audited (\d+) records", done.stderr)
    return cpu, time.monotonic() - started, int(found.group(1)) if found else -1


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = ClusterSettings.from_env()
    run = uuid.uuid4().hex[:8]
    prefix, keyspace = f"bench.audit.{run}.", f"bench_audit_{run}"
    topics = [f"{prefix}events", f"{prefix}mailbox-entries"]
    bootstrap = cluster.kafka_bootstrap
    await ensure_topics(bootstrap, [TopicSpec(t, args.partitions) for t in topics])
    env = auditor_env(cluster, prefix, keyspace, args.interval)
    out: dict[str, Any] = {"partitions": args.partitions * len(topics)}
    try:
        await asyncio.to_thread(run_once, env)  # makes the keyspace and the tables
        # Start-up, connecting, empty topics: subtracted below.
        base_cpu, base_wall, _ = await asyncio.to_thread(run_once, env)
        await produce(bootstrap, topics, args.partitions, args.records)
        cpu, wall, audited = await asyncio.to_thread(run_once, env)
        if audited != args.records:
            raise RuntimeError(f"the auditor read {audited} records, not {args.records}")
        per_record = (cpu - base_cpu) / args.records
        out["catch_up"] = {
            "records": args.records,
            "cpu_s": round(cpu, 3),
            "startup_cpu_s": round(base_cpu, 3),
            "us_per_record": round(per_record * 1e6, 1),
            "wall_s": round(wall, 2),
            "startup_wall_s": round(base_wall, 2),
        }

        argv = [sys.executable, "-m", "backbone.cli", "auditor"]
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            await asyncio.sleep(5)  # started and caught up
            idle_from, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(args.idle)
            idle = (cpu_seconds(proc.pid) - idle_from) / (time.monotonic() - t0)
            n = int(args.rate * args.seconds)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await produce(bootstrap, topics, args.partitions, n, rate=args.rate)
            await asyncio.sleep(args.interval + 1)  # the checkpoint covering them
            follow_cpu = cpu_seconds(proc.pid) - cpu0
            span = time.monotonic() - t0
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
        out["following"] = {
            "records": n,
            "rate": args.rate,
            "seconds": round(span, 1),
            "cpu_s": round(follow_cpu, 3),
            "idle_core_percent": round(idle * 100, 2),
            "us_per_record": round(follow_cpu / n * 1e6, 1),
            "core_percent": round(follow_cpu / span * 100, 2),
        }
        for mode in ("catch_up", "following"):
            us = out[mode]["us_per_record"]
            out[mode]["ms_per_message_audited_topics"] = round(us * AUDITED_PER_MESSAGE / 1e3, 3)
            out[mode]["percent_of_write_path_audited_topics"] = round(
                us * AUDITED_PER_MESSAGE / 1e3 / WRITE_PATH_MS_PER_MESSAGE * 100, 2
            )
            out[mode]["percent_of_write_path_all_records"] = round(
                us * RECORDS_PER_MESSAGE / 1e3 / WRITE_PATH_MS_PER_MESSAGE * 100, 2
            )
    finally:
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(bootstrap))
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            await admin.delete_topics(mine)
        finally:
            await admin.close()
        from store.cassandra import connect

        c, session = connect(cluster)
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        c.shutdown()
    return out


def report(out: dict[str, Any]) -> str:
    c, f = out["catch_up"], out["following"]
    return "\n".join(
        [
            f"AUDITOR COST ({out['partitions']} partitions)",
            f"{'':<11}{'records':>9}{'µs/record':>11}{'% write path (4 rec/msg)':>26}"
            f"{'(9 rec/msg)':>13}",
            f"{'catch-up':<11}{c['records']:>9}{c['us_per_record']:>11}"
            f"{c['percent_of_write_path_audited_topics']:>25}%"
            f"{c['percent_of_write_path_all_records']:>12}%",
            f"{'following':<11}{f['records']:>9}{f['us_per_record']:>11}"
            f"{f['percent_of_write_path_audited_topics']:>25}%"
            f"{f['percent_of_write_path_all_records']:>12}%",
            f"catch-up {c['wall_s']} s (empty: {c['startup_wall_s']} s); "
            f"following at {f['rate']}/s: uses {f['core_percent']}% of a core, "
            f"idle {f['idle_core_percent']}%",
        ]
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="records/s when following")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds to measure idle CPU")
    parser.add_argument("--partitions", type=int, default=12, help="per topic")
    parser.add_argument("--interval", type=float, default=10.0, help="checkpoint interval")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    out = asyncio.run(main(args))
    print(json.dumps(out, indent=2) if args.json else report(out))


if __name__ == "__main__":
    cli()
