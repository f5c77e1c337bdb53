"""How long `backbone events` takes to show one identity's or one aggregate's history on a
log of realistic size, reading only the partitions a key hashes to against reading all.

    python -m bench.events_read [--messages 20000] [--identities 200] [--partitions 12]
                                [--repeat 3] [--before-rev HEAD~1]

Writes the synthetic log of `bench.replay` (per 1 KiB message: a MessageSent and its Reply
on `events`, one mailbox entry per recipient) on topics and a keyspace of its own (removed
afterwards), takes an identity and a message from it, then times each query as a
subprocess, the way an operator runs it, and checks that the narrowed read printed exactly
the records the read of every partition printed. `--before-rev` also times
`backbone/events.py` as it was at that git revision (the code before the narrowed read),
on the same log, interleaved with the others so that a busy machine hurts them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from backbone.settings import ClusterSettings
from bench.replay import _clean_up, log_env, write_log
from bench.results import machine_line

# Runs an older events.py (from `git show REV:backbone/events.py`) as `backbone events`.
_BEFORE = """
import argparse, importlib.util, sys
spec = importlib.util.spec_from_file_location("events_before", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["events_before"] = module
spec.loader.exec_module(module)
parser = argparse.ArgumentParser()
module.add_parser(parser.add_subparsers())
args = parser.parse_args(["events", *sys.argv[2:]])
sys.exit(args.func(args))
"""


def _run(env: dict[str, str], argv: list[str], before: Path | None = None) -> tuple[float, str]:
    if before is None:
        cmd = [sys.executable, "-m", "backbone.cli", "events", *argv]
    else:
        cmd = [sys.executable, "-c", _BEFORE, str(before), *argv]
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr[-2000:]}")
    return took, done.stdout


def _records(out: str) -> list[tuple[str, int, int]]:
    return sorted((r["topic"], r["partition"], r["offset"]) for r in map(json.loads, out.split()))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = ClusterSettings.from_env()
    run = uuid.uuid4().hex[:8]
    prefix, keyspace = f"bench.events.{run}.", f"bench_events_{run}"
    master_b64 = base64.b64encode(os.urandom(32)).decode()
    env = log_env(cluster, prefix, keyspace, master_b64)
    out: dict[str, Any] = {"messages": args.messages, "partitions": args.partitions}
    before: Path | None = None
    try:
        t0 = time.monotonic()
        out["records"] = await write_log(
            cluster, prefix, keyspace, master_b64, args.messages, args.identities, args.partitions
        )
        out["write_s"] = round(time.monotonic() - t0, 1)
        # An identity and a message of the log: the last mailbox entry names both.
        _, last = _run(env, ["--topic", "mailbox", "--from-offset", "-1", "--json"])
        entry = json.loads(last.split()[-1])
        identity = entry["fields"]["recipient"]
        message = entry["fields"]["payload"]["messageId"]
        queries = {
            "identity": ["--identity", identity, "--json"],
            "identity, mailbox only": ["--identity", identity, "--topic", "mailbox", "--json"],
            "aggregate": ["--aggregate", f"message:{message}", "--json"],
        }
        if args.before_rev:
            shown = await asyncio.to_thread(
                subprocess.run,
                ["git", "show", f"{args.before_rev}:backbone/events.py"],
                capture_output=True,
                text=True,
                check=True,
            )
            with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
                fh.write(shown.stdout)
            before = Path(fh.name)
        rows = []
        for name, argv in queries.items():
            times: dict[str, list[float]] = {"narrowed": [], "all partitions": []}
            if before is not None:
                times["before"] = []
            outputs: dict[str, str] = {}
            for _ in range(args.repeat):
                for mode in times:
                    extra = ["--all-partitions"] if mode == "all partitions" else []
                    took, printed = _run(env, [*argv, *extra], before if mode == "before" else None)
                    times[mode].append(took)
                    outputs[mode] = printed
            same = {
                mode: _records(o) == _records(outputs["all partitions"])
                for mode, o in outputs.items()
            }
            rows.append(
                {
                    "query": name,
                    "records": len(_records(outputs["narrowed"])),
                    "seconds": {m: round(statistics.median(t), 2) for m, t in times.items()},
                    "same_records": same,
                }
            )
        out["queries"] = rows
    finally:
        if before is not None:
            before.unlink()
        await _clean_up(cluster, prefix, [keyspace])
    return out


def report(out: dict[str, Any]) -> str:
    lines = [
        f"BACKBONE EVENTS ({out['records']} records on {out['partitions']} partitions per topic,"
        f" {out['messages']} messages; median seconds of a whole command)",
    ]
    for row in out["queries"]:
        times = "  ".join(f"{m} {s:.2f}" for m, s in row["seconds"].items())
        same = (
            "same records" if all(row["same_records"].values()) else f"DIFFER {row['same_records']}"
        )
        lines.append(f"  {row['query']:<24} {row['records']:>5} records  {times}  ({same})")
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before-rev", help="also time backbone/events.py at this revision")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    out = asyncio.run(main(args))
    print(json.dumps(out, indent=2) if args.json else report(out))


if __name__ == "__main__":
    cli()
