"""Replay speed: records per second that `backbone replay` rebuilds, per worker process.

    python -m bench.replay [--messages 10000] [--identities 200] [--workers 1 2]
                           [--compare-unbatched]

Writes a synthetic log on topics and keyspaces of its own (removed afterwards) against the
running Kafka and Cassandra: per 1-recipient message of 1 KiB, what the backbone itself
appends (a MessageSent and its Reply on `events`, a mailbox entry for the recipient and
one for the sender's other devices... here one per recipient, as the router makes them),
sealed with the identities' data keys. Then runs `backbone replay` into a fresh keyspace
with 1 and 2 worker processes (`--worker i --workers n`) and reads each process's count
and time from its output. Target: 10,000 events/s per worker.
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
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from backbone.connections import kafka_client_kwargs
from backbone.security.logcrypto import MasterKey, new_data_key
from backbone.settings import ClusterSettings, InfraSettings
from bench.memory import cpu_seconds
from bench.processes import stack_pids
from bench.results import machine_line
from domain.mailbox_router import entries_for
from store.cassandra import connect
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames, ensure_topics
from streams.readmodels import create_schema

BODY = os.urandom(1024)


async def write_log(
    cluster: ClusterSettings,
    prefix: str,
    keyspace: str,
    master_b64: str,
    messages: int,
    identities: int,
    partitions: int,
    entries: bool = True,
) -> int:
    """The synthetic log and the source keyspace's data keys; returns the record count.
    Without `entries`, only the events (a worker's projector makes the entries)."""
    names = TopicNames(prefix)
    await ensure_topics(
        cluster.kafka_bootstrap,
        [s for s in names.specs(partitions) if s.name in (names.events, names.mailbox_entries)],
    )
    master = MasterKey.from_base64(master_b64)
    keys: dict[str, bytes] = {}
    codec = EnvelopeCodec(master_b64, lambda k: keys[k])
    addresses = [f"did:e:bench:dids:{uuid.uuid4().hex[:22]}" for _ in range(identities)]
    c, session = connect(cluster)
    create_schema(session, keyspace)
    for address in addresses:
        kid = codec.identity_key_id(address)
        keys[kid] = new_data_key()
        wrapped = base64.b64encode(master.wrap(keys[kid], kid)).decode()
        session.execute("INSERT INTO data_keys (key_id, wrapped) VALUES (%s, %s)", (kid, wrapped))
    c.shutdown()

    producer = AIOKafkaProducer(
        **kafka_client_kwargs(cluster), acks=1, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    count = 0
    try:
        pending = []
        for i in range(messages):
            sender, recipient = random.sample(addresses, 2)
            mid = f"MSG{uuid.uuid4().hex[:17]}"
            correlation = str(uuid.uuid4())
            agg = codec.aggregate_key("message", mid)
            now = datetime.now(UTC)
            sent = {
                "message_id": mid,
                "sender": sender,
                "sender_device": "DVCbench",
                "body": BODY,
                "attachments": [],
                "recipients": [{"address": recipient, "encrypted_key": os.urandom(80)}],
                "created_at": now,
            }
            raw = codec.seal(
                "MessageSent",
                sent,
                aggregate_key=agg,
                correlation_id=correlation,
                data_key_id=codec.identity_key_id(sender),
                aggregate_version=1,
            )
            reply = {
                "correlation_id": correlation,
                "ok": True,
                "status": 201,
                "error_code": None,
                "error_message": None,
                "resource_json": json.dumps({"id": mid}),
            }
            replied = codec.seal("Reply", reply, aggregate_key=agg, correlation_id=correlation)
            pending.append(await producer.send(names.events, raw, key=agg.encode()))
            pending.append(await producer.send(names.events, replied, key=agg.encode()))
            count += 2
            opened = codec.open(raw)
            routed = entries_for("MessageSent", opened.body) if entries else []
            for to, event_type, payload in routed:
                key = codec.aggregate_key("identity", to)
                entry = {
                    "recipient": to,
                    "event_type": event_type,
                    "payload_json": json.dumps(payload, separators=(",", ":")),
                    "source_event_id": opened.envelope["event_id"],
                    "occurred_at": now,
                }
                sealed = codec.seal(
                    "MailboxEntry",
                    entry,
                    aggregate_key=key,
                    correlation_id=correlation,
                    data_key_id=codec.identity_key_id(to),
                )
                pending.append(await producer.send(names.mailbox_entries, sealed, key=key.encode()))
                count += 1
            if len(pending) > 5000 or i == messages - 1:
                await asyncio.gather(*pending)
                pending = []
    finally:
        await producer.stop()
    return count


def replay(
    env: dict[str, str],
    target: str,
    source: str,
    worker: int,
    workers: int,
    batch: int,
    unbatched: bool = False,
) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "backbone.cli",
        "replay",
        "--keyspace",
        target,
        "--live",
        source,
        "--worker",
        str(worker),
        "--workers",
        str(workers),
        "--restart",
        "--batch",
        str(batch),
        *(["--unbatched"] if unbatched else []),
    ]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def parse(out: str, err: str) -> tuple[int, float, int]:
    """Records, seconds, and the Cassandra requests the replay sent."""
    found = re.search(r"replayed (\d+) records .* in ([\d.]+) s", out)
    requests = re.search(r"(\d+) statements in (\d+) Cassandra requests", out)
    if not found or not requests:
        raise RuntimeError(f"no result in replay's output: {out!r}\n{err[-3000:]}")
    return int(found.group(1)), float(found.group(2)), int(requests.group(2))


def log_env(
    cluster: ClusterSettings, prefix: str, keyspace: str, master_b64: str
) -> dict[str, str]:
    """The environment of a backbone process (replay, events, worker) reading the synthetic
    log `write_log` made on `prefix`'s topics and `keyspace`, sealed with `master_b64`."""
    return {
        **os.environ,
        "BACKBONE_KAFKA_BOOTSTRAP": cluster.kafka_bootstrap,
        "BACKBONE_CASSANDRA_CONTACT_POINTS": ",".join(cluster.cassandra_contact_points),
        "BACKBONE_CASSANDRA_PORT": str(cluster.cassandra_port),
        "BACKBONE_CASSANDRA_KEYSPACE": keyspace,
        "BACKBONE_TOPIC_PREFIX": prefix,
        "BACKBONE_MASTER_KEY": master_b64,
        "BACKBONE_SIGNING_SEED": base64.b64encode(os.urandom(32)).decode(),
        "BACKBONE_CLIENTS": "bench:bench-secret-0123456789",
        "BACKBONE_LOG_LEVEL": "warning",
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = ClusterSettings.from_env()
    run = uuid.uuid4().hex[:8]
    prefix, source = f"bench.replay.{run}.", f"bench_replay_{run}"
    master_b64 = base64.b64encode(os.urandom(32)).decode()
    env = log_env(cluster, prefix, source, master_b64)
    out: dict[str, Any] = {"messages": args.messages, "runs": []}
    targets: list[str] = []
    try:
        t0 = time.monotonic()
        out["records"] = await write_log(
            cluster, prefix, source, master_b64, args.messages, args.identities, args.partitions
        )
        out["write_s"] = round(time.monotonic() - t0, 1)
        # With --compare-unbatched, each worker count runs twice, one after the other on
        # the same log: the writes batched (as `backbone replay` does) and one request per
        # statement (as before, and as the workers write): the ratio holds on a busy
        # machine where the absolute rates do not.
        modes = [False, True] if args.compare_unbatched else [False]
        for n in args.workers:
            for unbatched in modes:
                target = f"{source}_w{n}{'_u' if unbatched else ''}"
                targets.append(target)
                cpu0 = os.times()
                store0 = _store_cpu()
                load0 = os.getloadavg()[0]
                procs = [replay(env, target, source, i, n, args.batch, unbatched) for i in range(n)]
                results = [parse(*p.communicate()) for p in procs]
                cpu1 = os.times()
                store1 = _store_cpu()
                cpu = (cpu1.children_user - cpu0.children_user) + (
                    cpu1.children_system - cpu0.children_system
                )
                records = sum(r for r, _, _ in results)
                wall = max(s for _, s, _ in results)
                out["runs"].append(
                    {
                        "workers": n,
                        "writes": "unbatched" if unbatched else "batched",
                        "records": records,
                        "seconds": wall,
                        "records_per_s": round(records / wall),
                        "records_per_s_per_worker": round(records / wall / n),
                        "replay_cpu_ms_per_record": round(cpu / records * 1e3, 3),
                        "requests_per_record": round(sum(q for _, _, q in results) / records, 2),
                        # What the same machine's Cassandra spent on it (the replay's rows
                        # are its only load when the stack is otherwise idle).
                        "cassandra_cpu_ms_per_record": (
                            round((store1 - store0) / records * 1e3, 3)
                            if store0 is not None and store1 is not None
                            else None
                        ),
                        "load_average": [round(load0, 1), round(os.getloadavg()[0], 1)],
                    }
                )
    finally:
        if args.keep:
            print(
                f"kept: BACKBONE_TOPIC_PREFIX={prefix} BACKBONE_CASSANDRA_KEYSPACE={source} "
                f"BACKBONE_MASTER_KEY={master_b64}",
                file=sys.stderr,
            )
        else:
            await _clean_up(cluster, prefix, [source, *targets])
    return out


def _store_cpu() -> float | None:
    """CPU seconds the local stack's Cassandra has used (None: not found here)."""
    pids = stack_pids(InfraSettings.from_env()).get("cassandra", [])
    return cpu_seconds(pids[0]) if pids else None


async def _clean_up(cluster: ClusterSettings, prefix: str, keyspaces: list[str]) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(cluster))
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    c, session = connect(cluster)
    for ks in keyspaces:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
    c.shutdown()


def report(out: dict[str, Any]) -> str:
    lines = [
        f"REPLAY SPEED ({out['records']} records: {out['messages']} messages, "
        f"written in {out['write_s']} s)",
        f"{'workers':>8} {'writes':<10}{'records/s':>10}{'per worker':>12}"
        f"{'cpu ms/record':>15}{'cassandra ms':>14}{'requests/record':>17}{'load':>12}"
        "  (requests: the projection's; the sequencer sends its own batches either way)",
    ]
    for r in out["runs"]:
        lines.append(
            f"{r['workers']:>8} {r['writes']:<10}{r['records_per_s']:>10,}"
            f"{r['records_per_s_per_worker']:>12,}{r['replay_cpu_ms_per_record']:>15}"
            f"{r['cassandra_cpu_ms_per_record'] or '-':>14}{r['requests_per_record']:>17}"
            f"{'->'.join(str(x) for x in r['load_average']):>12}"
        )
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the log and keyspaces")
    parser.add_argument("--batch", type=int, default=2000, help="replay's records per batch")
    also = "also replay with one request per statement, for the ratio"
    parser.add_argument("--compare-unbatched", action="store_true", help=also)
    args = parser.parse_args()
    print(machine_line())
    out = asyncio.run(main(args))
    print(json.dumps(out, indent=2) if args.json else report(out))


if __name__ == "__main__":
    cli()
