"""The replay commands of `backbone`:

    backbone replay --keyspace NEW [--restart] [--follow] [--worker I --workers N] [--batch N]
    backbone replay verify --keyspace NEW [--live KEYSPACE] [--json]
    backbone replay retention [--apply]
    backbone replay switch --keyspace NEW [--timeout S] [--drop-old]
    backbone replay switch --back [--timeout S]      (to the keyspace the last switch left)
    backbone replay pointer [--json]

`--live` defaults to the keyspace the API and workers use: BACKBONE_CASSANDRA_KEYSPACE, or
the one a switch pointed them at (backbone/replay/pointer.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

from backbone.settings import BackboneSettings

# What replay needs the log to keep: every event and every mailbox entry, for ever.
REPLAY_RETENTION = {"events": "-1", "mailbox-entries": "-1"}
_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def _keyspace(name: str) -> str:
    if not _KEYSPACE.match(name):
        raise argparse.ArgumentTypeError("a keyspace is lower-case letters, digits and _")
    return name


def cmd_replay(args: argparse.Namespace) -> int:
    if args.action == "verify":
        return _verify(args)
    if args.action == "retention":
        return asyncio.run(_retention(args.apply))
    if args.action == "switch":
        return asyncio.run(_switch(args))
    if args.action == "pointer":
        return asyncio.run(_pointer(args))
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from backbone.replay.rebuild import Replayer, ReplayOptions

    settings = BackboneSettings.from_env()
    if not args.keyspace:
        print("error: --keyspace NEW is required", file=sys.stderr)
        return 2
    live = args.live or asyncio.run(_active(settings))
    if args.keyspace == live:
        print("error: replay builds a fresh keyspace, not the live one", file=sys.stderr)
        return 2
    options = ReplayOptions(
        target=args.keyspace,
        source=live,
        worker=args.worker,
        workers=args.workers,
        batch=args.batch,
        restart=args.restart,
        throttle_s=args.throttle,
        follow=args.follow,
        batch_writes=not args.unbatched,
    )
    replayer = Replayer(settings, options)
    tty = sys.stderr.isatty()

    async def main() -> None:
        async def show() -> None:
            last_line = time.monotonic()  # (not a terminal: a line every 5 s)
            while True:
                await asyncio.sleep(0.5)
                if tty:
                    print("\r" + replayer.progress.line(), end="", file=sys.stderr, flush=True)
                elif time.monotonic() - last_line >= 5:
                    last_line = time.monotonic()
                    print(replayer.progress.line(), file=sys.stderr, flush=True)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bar = asyncio.create_task(show())
        try:
            await replayer.run(stop)
        finally:
            bar.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await bar
            await replayer.close()

    from backbone.datakeys import DataKeyError

    try:
        asyncio.run(main())
    except DataKeyError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    p = replayer.progress
    print(("\r" if tty else "") + p.line(), file=sys.stderr)
    elapsed = time.monotonic() - p.started
    print(
        f"replayed {p.done} records into {args.keyspace} in {elapsed:.1f} s "
        f"({p.rate():,.0f} records/s); {p.skipped} skipped (no data key: a deleted "
        f"identity's, or not an envelope), {p.expired} past their retention (not "
        f"written), {p.erased} deleted identities erased again from what their peers' "
        f"records named"
    )
    if replayer.writes is not None:
        w = replayer.writes
        print(f"{w.statements} statements in {w.requests} Cassandra requests")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from backbone.replay.compare import compare, format_comparison
    from store.cassandra import connect

    settings = BackboneSettings.from_env()
    if not args.keyspace:
        print("error: --keyspace REBUILT is required", file=sys.stderr)
        return 2
    live = args.live or asyncio.run(_active(settings))
    cluster, session = connect(settings.cluster)
    try:
        results = compare(session, live, args.keyspace)
    finally:
        cluster.shutdown()
    if args.json:
        out: list[dict[str, Any]] = [asdict(r) | {"identical": r.identical} for r in results]
        print(json.dumps(out, indent=2))
    else:
        print(format_comparison(results, live, args.keyspace))
    return 0 if all(r.identical for r in results) else 1


async def _retention(apply: bool) -> int:
    """Shows (and with --apply sets) the retention of the topics replay needs whole."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from backbone.connections import kafka_client_kwargs

    settings = BackboneSettings.from_env()
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings.cluster))
    await admin.start()
    wrong = []
    try:
        for short, wanted in REPLAY_RETENTION.items():
            topic = f"{settings.cluster.topic_prefix}{short}"
            resource = ConfigResource(ConfigResourceType.TOPIC, topic)
            response = await admin.describe_configs([resource])
            entries = {e[0]: e[1] for r in response[0].resources for e in r[4]}
            now = entries.get("retention.ms")
            ok = now == wanted
            print(
                f"{topic:<40} retention.ms {now!s:>14}  {'ok' if ok else f'replay needs {wanted}'}"
            )
            if not ok:
                wrong.append(topic)
                if apply:
                    cfg = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": wanted})
                    await admin.alter_configs([cfg])
                    print(f"{topic:<40} retention.ms set to {wanted}")
    finally:
        await admin.close()
    return 0 if not wrong or apply else 1


async def _active(settings: BackboneSettings) -> str:
    """The keyspace the API and workers use now."""
    from backbone.replay.pointer import read_pointer
    from store.cassandra import connect

    cluster, session = await asyncio.to_thread(connect, settings.cluster, None)
    try:
        pointer = await read_pointer(session, settings.cluster.keyspace)
    finally:
        await asyncio.to_thread(cluster.shutdown)
    return settings.cluster.keyspace if pointer is None else pointer.active


async def _switch(args: argparse.Namespace) -> int:
    from backbone.replay.switch import Switch, SwitchFailed, SwitchRefused

    settings = BackboneSettings.from_env()
    if bool(args.keyspace) == args.back:
        print(
            "error: switch takes --keyspace NEW (rebuilt by `backbone replay`) or --back",
            file=sys.stderr,
        )
        return 2
    switch = Switch(settings, args.keyspace, timeout_s=args.timeout)
    try:
        report = await switch.run(drop_old=args.drop_old)
    except SwitchRefused as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    except SwitchFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(report)))
    return 0


async def _pointer(args: argparse.Namespace) -> int:
    from backbone.replay.pointer import Pointer, control_keyspace, read_history, read_pointer
    from store.cassandra import connect, execute

    settings = BackboneSettings.from_env()
    configured = settings.cluster.keyspace
    cluster, session = await asyncio.to_thread(connect, settings.cluster, None)
    try:
        pointer = await read_pointer(session, configured) or Pointer.initial(configured)
        clients = []
        if pointer.epoch:
            query = (
                f"SELECT client, role, epoch, phase, on_keyspace FROM "  # noqa: S608
                f"{control_keyspace(configured)}.keyspace_clients"
            )
            clients = [r._asdict() for r in await execute(session, query)]
        left = await read_history(session, configured)
    finally:
        await asyncio.to_thread(cluster.shutdown)
    if args.json:
        history = [asdict(h) for h in left]
        print(json.dumps({"pointer": asdict(pointer), "clients": clients, "left": history}))
        return 0
    print(f"active {pointer.active}  phase {pointer.phase}  epoch {pointer.epoch}")
    for c in sorted(clients, key=lambda c: str(c["client"])):
        print(f"  {c['client']:<48} {c['on_keyspace']:<24} {c['phase']} (epoch {c['epoch']})")
    for h in sorted(left, key=lambda h: -h.epoch):
        if h.keyspace != pointer.active:
            how = "dropped" if h.dropped else "resumable: replay switch --back"
            print(f"  left {h.keyspace} at epoch {h.epoch} ({how})")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="rebuild the read models from the log; verify them")
    actions = ["run", "verify", "retention", "switch", "pointer"]
    p.add_argument("action", nargs="?", default="run", choices=actions)
    p.add_argument("--keyspace", type=_keyspace, help="the keyspace to build (or verify)")
    p.add_argument("--live", type=_keyspace, help="the live keyspace (default: configured)")
    p.add_argument("--restart", action="store_true", help="from the beginning, not resumed")
    follow = "at the end, keep applying new records until SIGTERM (for a switch)"
    p.add_argument("--follow", action="store_true", help=follow)
    p.add_argument("--worker", type=int, default=0, help="this process's share: 0..N-1")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the partitions")
    p.add_argument("--batch", type=int, default=2000, help="records per batch and checkpoint")
    p.add_argument("--throttle", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--unbatched", action="store_true", help=argparse.SUPPRESS)  # bench.replay
    p.add_argument("--apply", action="store_true", help="retention: set what replay needs")
    p.add_argument("--timeout", type=float, default=60.0, help="switch: seconds per phase")
    p.add_argument("--drop-old", action="store_true", help="switch: drop the old keyspace")
    back = "switch: back to the keyspace the last switch left, replaying only what came since"
    p.add_argument("--back", action="store_true", help=back)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)
