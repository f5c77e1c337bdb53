"""The audit commands of `backbone`:

    backbone auditor [--once]                     follow the source topics, sign checkpoints
    backbone audit verify [--topic T] [--partition P] [--read-from TOPIC]
                          [--checkpoints FILE] [--json]
    backbone audit prove inclusion --topic T --partition P --offset O [--size N]
    backbone audit prove consistency --topic T --partition P [--first N] [--second M]
    backbone audit check BUNDLE.json [--public-key B64]   (offline: no Kafka, no Cassandra)
    backbone audit checkpoints [--topic T] [--partition P] [--json]
    backbone audit public-key

Topics are named without the deployment's prefix (`events`, `mailbox-entries`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import Any

from backbone.audit import settings as audit_settings
from backbone.audit.checkpoints import Checkpoint, Verifier, public_key_b64
from backbone.audit.store import AuditStore


def _verifier(args: argparse.Namespace) -> Verifier:
    key = getattr(args, "public_key", None)
    return Verifier.from_base64(key) if key else audit_settings.verifier()


@contextlib.contextmanager
def _store(settings: audit_settings.AuditSettings) -> Iterator[AuditStore]:
    from store.cassandra import connect

    cluster, session = connect(settings.cluster, settings.keyspace)
    try:
        yield AuditStore(session)
    finally:
        cluster.shutdown()


def _topics(settings: audit_settings.AuditSettings, short: str | None) -> list[str]:
    if short is None:
        return list(settings.topics)
    return [f"{settings.cluster.topic_prefix}{short}"]


def cmd_auditor(args: argparse.Namespace) -> int:
    from backbone.audit.auditor import Auditor

    settings = audit_settings.AuditSettings.from_env()
    if args.interval is not None:
        settings = audit_settings.AuditSettings(
            settings.cluster,
            settings.keyspace,
            settings.topics,
            args.interval,
            settings.checkpoint_topic,
        )
    auditor = Auditor(settings, audit_settings.signer())

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await auditor.run(stop, until_caught_up=args.once)

    asyncio.run(main())
    s = auditor.stats
    print(f"audited {s.records} records, signed {s.checkpoints} checkpoints", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from backbone.audit.logread import partitions_of
    from backbone.audit.verify import PartitionReport, format_report, verify_partition

    settings = audit_settings.AuditSettings.from_env()
    verifier = _verifier(args)
    given: list[Checkpoint | str] | None = None
    if args.checkpoints:
        with open(args.checkpoints) as fh:
            given = _parse_checkpoints(fh.read().splitlines())
    elif args.from_topic:
        # The checkpoints as the auditor published them: evidence that does not depend on
        # Cassandra's copy (which whoever can alter the log may be able to alter too).
        given = asyncio.run(_published(settings))
    reports: list[PartitionReport] = []

    async def run(store: AuditStore | None) -> None:
        for topic in _topics(settings, args.topic):
            read_topic = args.read_from or topic
            parts = await partitions_of(settings.cluster.kafka_bootstrap, read_topic)
            for p in parts if args.partition is None else [args.partition]:
                report = await verify_partition(
                    settings.cluster.kafka_bootstrap,
                    store,
                    topic,
                    p,
                    verifier,
                    read_topic=read_topic,
                    checkpoints=given,
                )
                reports.append(report)
                if not args.json:
                    print(format_report(report), flush=True)

    if args.no_leaves:
        asyncio.run(run(None))
    else:
        with _store(settings) as store:
            asyncio.run(run(store))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    tampered = [r for r in reports if r.tampered]
    if not args.json:
        print(f"\n{len(reports)} partitions verified, {len(tampered)} tampered")
    return 1 if tampered else 0


def _parse_checkpoints(lines: list[str]) -> list[Checkpoint | str]:
    out: list[Checkpoint | str] = []
    for line in lines:
        if line.strip():
            try:
                out.append(Checkpoint.from_json(line))
            except ValueError as exc:
                out.append(str(exc))
    return out


async def _published(settings: audit_settings.AuditSettings) -> list[Checkpoint | str]:
    from backbone.audit.logread import partitions_of, read_partition

    bootstrap = settings.cluster.kafka_bootstrap
    lines = []
    for p in await partitions_of(bootstrap, settings.checkpoint_topic):
        async for r in read_partition(bootstrap, settings.checkpoint_topic, p):
            if r.value is not None:
                lines.append(r.value.decode(errors="replace"))
    return _parse_checkpoints(lines)


def cmd_prove(args: argparse.Namespace) -> int:
    from backbone.audit.prove import prove_consistency, prove_inclusion

    settings = audit_settings.AuditSettings.from_env()
    verifier = _verifier(args)
    topic = _topics(settings, args.topic)[0]
    with _store(settings) as store:
        try:
            bundle: dict[str, Any]
            if args.kind == "inclusion":
                bundle = asyncio.run(
                    prove_inclusion(
                        settings.cluster.kafka_bootstrap,
                        store,
                        verifier,
                        topic,
                        args.partition,
                        args.offset,
                        args.size,
                    )
                )
            else:
                bundle = asyncio.run(
                    prove_consistency(
                        store, verifier, topic, args.partition, args.first, args.second
                    )
                )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    text = json.dumps(bundle, indent=2)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from backbone.audit.prove import check_bundle

    with open(args.bundle) as fh:
        bundle = json.load(fh)
    try:
        print("ok: " + check_bundle(bundle, _verifier(args)))
    except (ValueError, KeyError, TypeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from backbone.audit.logread import partitions_of

    settings = audit_settings.AuditSettings.from_env()
    verifier = _verifier(args)
    with _store(settings) as store:
        for topic in _topics(settings, args.topic):
            parts = (
                asyncio.run(partitions_of(settings.cluster.kafka_bootstrap, topic))
                if args.partition is None
                else [args.partition]
            )
            for p in parts:
                found = list(store.checkpoints(topic, p))
                shown = found if args.all else found[-1:]
                for cp in shown:
                    if isinstance(cp, str):
                        print(f"# unreadable: {cp}", file=sys.stderr)
                    elif args.json:
                        print(cp.to_json())
                    else:
                        try:
                            verifier.check(cp)
                            status = "signed"
                        except ValueError:
                            status = "NOT SIGNED BY THIS KEY"
                        h = cp.head
                        print(
                            f"{h.topic}/{h.partition}  size {h.size:>9}  root {h.root.hex()}  "
                            f"last offset {h.last_offset}  time {h.time_ms}  {status}"
                        )
    return 0


def cmd_public_key(args: argparse.Namespace) -> int:
    verifier = audit_settings.verifier()
    print(f"{public_key_b64(verifier.public_key)}  (key id {verifier.key_id})")
    return 0


def add_parsers(sub: Any) -> None:
    """Adds `auditor` and `audit ...` to the `backbone` command's subparsers."""
    p_auditor = sub.add_parser("auditor", help="sign Merkle checkpoints of the source topics")
    p_auditor.add_argument(
        "--once", action="store_true", help="read every partition to its current end, sign, exit"
    )
    p_auditor.add_argument(
        "--interval", type=float, help="seconds between checkpoints (BACKBONE_AUDIT_INTERVAL)"
    )
    p_auditor.add_argument("--run-dir", help="marks the process as started by `backbone up`")
    p_auditor.set_defaults(func=cmd_auditor)

    p_audit = sub.add_parser("audit", help="verify the log, prove records, list checkpoints")
    audit = p_audit.add_subparsers(dest="audit_command", required=True)
    key_help = "base64 Ed25519 public key to trust (default: BACKBONE_AUDIT_PUBLIC_KEY or ours)"

    p_verify = audit.add_parser("verify", help="recompute from the log; name what changed")
    p_verify.add_argument("--topic", help="e.g. events (default: every audited topic)")
    p_verify.add_argument("--partition", type=int)
    p_verify.add_argument("--read-from", help="full name of a copy of the topic to check")
    p_verify.add_argument("--checkpoints", help="JSON lines of checkpoints kept elsewhere")
    published = "the checkpoints as published on <prefix>audit-checkpoints"
    p_verify.add_argument("--from-topic", action="store_true", help=published)
    p_verify.add_argument(
        "--no-leaves",
        action="store_true",
        help="ignore the stored leaf hashes: checkpoint roots only",
    )
    p_verify.add_argument("--public-key", help=key_help)
    p_verify.add_argument("--json", action="store_true")
    p_verify.set_defaults(func=cmd_verify)

    p_prove = audit.add_parser("prove", help="an inclusion or consistency proof bundle")
    p_prove.add_argument("kind", choices=["inclusion", "consistency"])
    p_prove.add_argument("--topic", default="events")
    p_prove.add_argument("--partition", type=int, required=True)
    p_prove.add_argument("--offset", type=int, help="inclusion: the record's offset")
    p_prove.add_argument("--size", type=int, help="inclusion: the checkpoint (default latest)")
    p_prove.add_argument("--first", type=int, help="consistency: the older checkpoint's size")
    p_prove.add_argument("--second", type=int, help="consistency: the newer (default latest)")
    p_prove.add_argument("-o", "--output", help="write the bundle here (default stdout)")
    p_prove.add_argument("--public-key", help=key_help)
    p_prove.set_defaults(func=cmd_prove)

    p_check = audit.add_parser("check", help="check a proof bundle offline")
    p_check.add_argument("bundle")
    p_check.add_argument("--public-key", help=key_help)
    p_check.set_defaults(func=cmd_check)

    p_cps = audit.add_parser("checkpoints", help="the latest (or --all) signed checkpoints")
    p_cps.add_argument("--topic")
    p_cps.add_argument("--partition", type=int)
    p_cps.add_argument("--all", action="store_true")
    p_cps.add_argument("--json", action="store_true", help="JSON lines, for verify --checkpoints")
    p_cps.add_argument("--public-key", help=key_help)
    p_cps.set_defaults(func=cmd_checkpoints)

    p_pub = audit.add_parser("public-key", help="the auditor's public key, to hand out")
    p_pub.set_defaults(func=cmd_public_key)
