"""Scale-out: end-to-end throughput with 1, 2 and 4 workers and 1 and 2 API processes.

    python -m bench.scale_out [--workers 1 2 4] [--apis 1 2] [--recipients 1]
                              [--levels 16 48] [--level-seconds 8] [--json f] [--plot f]

The running stack's worker and API stay; extra workers (`backbone worker --data-dir <tmp>`,
same environment, so the same consumer groups) and extra APIs (`backbone api --port <free>`)
are started for each configuration and all stopped at the end, also on Ctrl-C. Worker
counts only grow during a run (1, then 2, then 4), so each step is one rebalance; after
it, the run waits for the new worker's `[^Worker]: Ready` and then until messages from
every sender group are delivered within 2 s three rounds in a row (`bench/context.py`
`settle`). API counts are switched per configuration; the senders and the recipients'
mailbox streams are spread round robin over the APIs in use.

Per configuration it first checks that identities made *now* can act at once (a few new
identities each create a template; `fresh_identities_check`): with several workers the
command may land on a worker that must learn the new identity's data key from another.
The sender groups themselves are made before any extra worker starts. Then it runs the
closed-loop throughput sweep of `bench/end_to_end.py` and
reports the best level. The topics have `BACKBONE_PARTITIONS` (12 by default) partitions,
enough for 4 workers. On a 2-core machine shared by Kafka, Cassandra and the load generator
more processes mostly share the same two cores: the figure shows whether throughput holds
or grows, not a cluster's scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backbone.settings import BackboneSettings, InfraSettings
from bench import end_to_end, report, results
from bench.context import (
    PhaseMarker,
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
from bench.parties import Clients, all_parties, make_groups, renew_logins
from bench.processes import ExtraProcesses, stack_pids
from bench.progress import phase


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_out", description=__doc__.splitlines()[0]
    )
    add_stack_arguments(parser)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--apis", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--groups", type=int, default=8, help="sender groups (spread the keys)")
    parser.add_argument("--levels", type=int, nargs="+", default=[16, 48])
    parser.add_argument("--level-seconds", type=float, default=8.0)
    parser.add_argument(
        "--no-fresh-check",
        action="store_true",
        help="skip the new-identities check (its failures crash agents)",
    )
    parser.add_argument("--code-rev", help="run extra workers/APIs from this git revision")
    parser.add_argument("--json", type=Path, help="default: bench-results/scale-out-<ts>.json")
    parser.add_argument("--plot", type=Path, help="write a PNG of throughput by processes")
    return parser.parse_args(argv)


async def _set_apis(extras: ExtraProcesses, wanted: int, sampler: Sampler) -> list[str]:
    """Start or stop extra APIs until `wanted` API processes run; returns their URLs."""
    running = extras.apis()
    if len(running) > wanted - 1:
        extras.stop(running[wanted - 1 :])
    else:
        await add_apis(extras, wanted - 1 - len(running), sampler)
    return [e.url for e in extras.apis() if e.url is not None]


async def run(args: argparse.Namespace, extras: ExtraProcesses) -> dict[str, Any]:
    cancel_on_sigterm()
    infra = InfraSettings.from_env()
    settings = BackboneSettings.from_env()
    secret = args.client_secret or local_secret(infra)
    doc = results.new_document(
        {
            "kind": "scale-out",
            "workers": args.workers,
            "apis": args.apis,
            "recipients": args.recipients,
            "levels": args.levels,
            "level_seconds": args.level_seconds,
            "partitions": settings.partitions,
        }
    )
    pids = stack_pids(infra)
    doc["code"] = {**code_info(pids), "extras_from": args.code_rev or "working tree"}
    sampler = Sampler({**pids, "bench": [os.getpid()]})
    sampler.start()
    phases = PhaseMarker(sampler, settings.worker_metrics_port)
    rows: list[dict[str, Any]] = []
    setup = Clients([args.url], args.client_id, secret)
    try:
        phase("scale-out: identities and relationships")
        groups = await make_groups(setup, args.groups, max(args.recipients, 1))
        workers_now = 1
        cfg = end_to_end.EndToEndConfig(args.levels, args.level_seconds, 0.0, warmup_seconds=2.0)
        for workers in sorted(set(args.workers)):
            if workers > workers_now:
                phases.mark(f"start workers -> {workers}")
                await add_workers(extras, workers - workers_now, sampler)
                workers_now = workers
            for apis in sorted(set(args.apis)):
                urls = [args.url, *await _set_apis(extras, apis, sampler)]
                clients = Clients(urls, args.client_id, secret)
                hub = MailboxStreams(clients)
                try:
                    await renew_logins(clients, all_parties(groups))
                    await hub.open([r for g in groups for r in g.recipients])
                    took = await settle(clients, hub, groups)
                    phase(f"{workers} worker(s), {apis} API(s): settled after {took:.1f}s")
                    fresh = None if args.no_fresh_check else await fresh_identities_check(clients)
                    phases.mark(f"{workers} workers, {apis} APIs")
                    measured = await end_to_end.measure(
                        clients, hub, groups, args.recipients, cfg, latency=False
                    )
                finally:
                    await hub.close()
                    await clients.aclose()
                best = measured["max"]
                rows.append(
                    {
                        "fresh_identities": fresh,
                        "workers": workers,
                        "apis": apis,
                        "recipients": args.recipients,
                        **best,
                        "sweep": measured["sweep"],
                    }
                )
                phase(f"{workers} worker(s), {apis} API(s): {best['messages_per_s']} msg/s")
        phases.mark("end")
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise
    except Exception as exc:
        doc["errors"].append(f"scale-out: {type(exc).__name__}: {exc}")
    finally:
        await setup.aclose()
        sampler.stop()
        doc["memory"] = sampler.memory()
        doc["cpu_phases"] = sampler.phases
    doc["scale_out"] = rows
    return results.finish(doc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extras = make_extras(args.code_rev, InfraSettings.from_env(), True)
    try:
        doc = asyncio.run(run(args, extras))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: stopping extra processes", file=sys.stderr)
        return 130
    finally:
        extras.stop_all()
    print(report.scale_out_table(doc["scale_out"]))
    print()
    print(report.memory_table(doc))
    if doc["errors"]:
        print("\nERRORS\n" + "\n".join(f"- {e}" for e in doc["errors"]))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.json or Path("bench-results") / f"scale-out-{stamp}.json"
    results.write(doc, path)
    print(f"\nresults: {path}")
    if args.plot and doc["scale_out"]:
        report.plot_scale_out(doc["scale_out"], args.plot)
        print(f"plot:    {args.plot}")
    return 0 if not doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
