"""The backbone benchmark: raw limits, end to end, catch-up, memory, in one run.

    python -m bench [--quick] [--catch-up 100000] [--json out.json] [--plot out.png]
                    [--workers N] [--apis M] [--url http://127.0.0.1:8080]

Against the local stack (`backbone up`): it measures, in this order and in the same run,
the raw limit of the machine (aiokafka and cassandra-driver alone, `bench/raw_limits.py`),
the backbone end to end through its API (1 KiB messages to 1 and to 5 recipients,
throughput and latency at half of it, `bench/end_to_end.py`), sync catch-up of a long
backlog (`bench/catch_up.py`), and the API's and workers' memory and CPU throughout
(`bench/memory.py`). It prints tables with the ratios to the raw limit and the targets
of issue 8 (met / not met), writes the results as JSON (default
`bench-results/<timestamp>.json`) and, with `--plot`, a PNG.

`--workers N --apis M` starts N-1 extra workers and M-1 extra APIs after the raw limits
and after the benchmark's identities are made (stopped again at the end, also on Ctrl-C;
`--code-rev` runs them from a git revision instead of the working tree), spreads the load
over all APIs, and checks that identities made after the scale-out can act at once
(`scale_check`). `python -m bench.scale_out` runs the throughput for several such
configurations in one go.

A quick run (`--quick`) takes about 2 minutes, the default about 10 on a 2-core machine
(most of it the sequencer numbering the 100,000-entry backlog; `--catch-up N` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import traceback
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from backbone.settings import BackboneSettings, InfraSettings
from bench import catch_up, end_to_end, logscan, raw_limits, report, results
from bench.context import (
    FULL,
    QUICK,
    PhaseMarker,
    Preset,
    add_apis,
    add_stack_arguments,
    add_workers,
    cancel_on_sigterm,
    code_info,
    fresh_identities_check,
    local_secret,
    make_extras,
    settle,
)
from bench.mailbox_streams import MailboxStreams
from bench.memory import Sampler
from bench.parties import (
    Clients,
    Group,
    Party,
    all_parties,
    make_groups,
    new_party,
    renew_logins,
)
from bench.processes import ExtraProcesses, api_log, stack_pids, worker_log
from bench.progress import phase

T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="small counts (about 2 minutes)")
    parser.add_argument("--catch-up", type=int, help="pending entries to read (default 100000)")
    parser.add_argument(
        "--catch-up-source",
        choices=["log", "messages"],
        default="log",
        help="make the backlog on the sequencer's topic (log) or by sending",
    )
    parser.add_argument("--recipients", type=int, nargs="+", default=[1, 5])
    parser.add_argument(
        "--respond-async",
        action="store_true",
        help="send with Prefer: respond-async (202 once durable on the log)",
    )
    parser.add_argument("--levels", type=int, nargs="+", help="concurrent senders to try")
    parser.add_argument("--level-seconds", type=float)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--skip", nargs="*", default=[], choices=["raw", "e2e", "catch-up"])
    parser.add_argument("--workers", type=int, default=1, help="workers in total (>= 1)")
    parser.add_argument("--apis", type=int, default=1, help="API processes in total (>= 1)")
    parser.add_argument("--code-rev", help="run extra workers/APIs from this git revision")
    parser.add_argument("--json", type=Path, help="default: bench-results/<timestamp>.json")
    parser.add_argument("--plot", type=Path, help="write a PNG of the results")
    return parser.parse_args(argv)


def preset_of(args: argparse.Namespace) -> Preset:
    base = QUICK if args.quick else FULL
    return dataclasses.replace(
        base,
        levels=args.levels or base.levels,
        level_seconds=args.level_seconds or base.level_seconds,
        latency_seconds=args.latency_seconds or base.latency_seconds,
        catch_up=args.catch_up if args.catch_up is not None else base.catch_up,
    )


async def _phase(doc: dict[str, Any], name: str, work: Awaitable[T]) -> T | None:
    """Run one phase; a failure is recorded and the run goes on with the next phase."""
    try:
        return await work
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise
    except Exception as exc:
        doc["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
        return None


async def run(args: argparse.Namespace, extras: ExtraProcesses) -> dict[str, Any]:
    cancel_on_sigterm()
    infra = InfraSettings.from_env()
    settings = BackboneSettings.from_env()
    preset = preset_of(args)
    secret = args.client_secret or local_secret(infra)
    doc = results.new_document(
        {
            "quick": args.quick,
            "preset": preset.__dict__,
            "recipients": args.recipients,
            "catch_up_source": args.catch_up_source,
            "workers": args.workers,
            "apis": args.apis,
            "url": args.url,
            "partitions": settings.partitions,
            "skip": args.skip,
        }
    )
    logs = {"worker": worker_log(infra), "api": api_log(infra)}
    offsets = {k: logscan.size(p) for k, p in logs.items()}
    pids = stack_pids(infra)
    doc["code"] = code_info(pids)
    sampler = Sampler({**pids, "bench": [os.getpid()]})
    sampler.start()
    phases = PhaseMarker(sampler, settings.worker_metrics_port)
    clients: Clients | None = None
    hub: MailboxStreams | None = None
    try:
        if "raw" not in args.skip:
            phase("raw limits")
            phases.mark("raw limits")
            cfg = raw_limits.RawConfig(
                preset.kafka_records,
                preset.cassandra_rows,
                preset.pipeline_records,
                preset.latency_records,
            )
            doc["raw"] = await _phase(
                doc, "raw limits", raw_limits.measure(settings.cluster, settings.partitions, cfg)
            )
        groups: list[Group] = []
        catch_up_party: Party | None = None
        if "e2e" not in args.skip or "catch-up" not in args.skip:
            # The identities and relationships are made before extra workers join: with
            # several workers, a command for an identity made on another worker waits for
            # its data key, which (seen here) may never arrive; `scale_check` shows it.
            phase("end to end: identities and relationships")
            phases.mark("e2e setup")
            setup = Clients([args.url], args.client_id, secret)
            try:
                if "e2e" not in args.skip:
                    groups = await make_groups(setup, preset.groups, max(args.recipients))
                if "catch-up" not in args.skip and preset.catch_up > 0:
                    catch_up_party = await new_party(setup, 0)
            finally:
                await setup.aclose()
        phases.mark("start extra processes")
        await add_workers(extras, args.workers - 1, sampler)
        urls = [args.url, *await add_apis(extras, args.apis - 1, sampler)]
        doc["settings"]["api_urls"] = urls
        clients = Clients(urls, args.client_id, secret)
        if args.workers > 1 or args.apis > 1:
            doc["scale_check"] = await _phase(
                doc, "fresh identities after scaling out", fresh_identities_check(clients)
            )
        if groups:
            hub = MailboxStreams(clients)
            await hub.open([r for g in groups for r in g.recipients])
            if args.workers > 1:
                took = await settle(clients, hub, groups)
                phase(f"partitions settled after {took:.1f}s")
            e2e_cfg = end_to_end.EndToEndConfig(
                preset.levels,
                preset.level_seconds,
                preset.latency_seconds,
                preset.warmup_seconds,
                respond_async=args.respond_async,
            )
            for n in args.recipients:
                await renew_logins(clients, all_parties(groups))
                phase(f"end to end: {n} recipient(s)")
                phases.mark(f"e2e {n} rcpt warm-up")
                figures = await _phase(
                    doc,
                    f"end to end {n} rcpt",
                    end_to_end.measure(clients, hub, groups, n, e2e_cfg, on_phase=phases.mark),
                )
                if figures is not None:
                    doc["end_to_end"][str(n)] = figures
            doc["stream_reconnects"] = hub.reconnects
            await hub.close()
            hub = None
        if "catch-up" not in args.skip and preset.catch_up > 0:
            phase(f"catch-up of {preset.catch_up:,} entries ({args.catch_up_source})")
            phases.mark("catch-up")
            doc["catch_up"] = await _phase(
                doc,
                "catch-up",
                catch_up.measure(
                    clients, settings, preset.catch_up, args.catch_up_source, catch_up_party
                ),
            )
        phases.mark("end")
    finally:
        if hub is not None:
            await hub.close()
        if clients is not None:
            await clients.aclose()
        sampler.stop()
        doc["memory"] = sampler.memory()
        doc["cpu_phases"] = sampler.phases
        doc["log_findings"] = {k: logscan.findings(p, offsets[k]) for k, p in logs.items()}
        doc["log_findings"].update(
            {f"extra {e.kind} {e.pid}": logscan.findings(e.log, 0) for e in extras.extras}
        )
    return results.finish({k: v for k, v in doc.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers < 1 or args.apis < 1:
        raise SystemExit("--workers and --apis count all processes: at least 1 each")
    extras = make_extras(args.code_rev, InfraSettings.from_env(), args.workers > 1 or args.apis > 1)
    try:
        doc = asyncio.run(run(args, extras))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: stopping extra processes", file=sys.stderr)
        return 130
    finally:
        extras.stop_all()  # always: also on Ctrl-C and on errors
    print(report.render(doc))
    path = args.json or results.default_path()
    results.write(doc, path)
    print(f"\nresults: {path}")
    if args.plot:
        report.plot(doc, args.plot)
        print(f"plot:    {args.plot}")
    return 0 if not doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
