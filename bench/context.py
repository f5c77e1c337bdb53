"""What the benchmark's entry points share: presets, the local client secret, starting
extra workers and APIs and waiting until the partitions have settled on them."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backbone.settings import LOCAL_CLIENT_ID, InfraSettings
from bench import worker_metrics
from bench.end_to_end import Sender
from bench.mailbox_streams import MailboxStreams
from bench.memory import Sampler
from bench.parties import Clients, Group, Party, new_party
from bench.processes import (
    Extra,
    ExtraProcesses,
    code_changed_since,
    export_revision,
    git_head,
    stack_pids,
    started_at,
)
from bench.progress import phase
from bench.worker_metrics import Snapshot


@dataclass(frozen=True)
class Preset:
    """Counts and durations of one run; `quick` finishes in about two minutes."""

    kafka_records: int
    cassandra_rows: int
    pipeline_records: int
    latency_records: int
    groups: int
    levels: list[int] = field(default_factory=list)
    level_seconds: float = 20.0
    latency_seconds: float = 30.0
    warmup_seconds: float = 3.0
    catch_up: int = 100_000


QUICK = Preset(
    kafka_records=20_000,
    cassandra_rows=10_000,
    pipeline_records=10_000,
    latency_records=300,
    groups=4,
    levels=[4, 16, 48],
    level_seconds=6.0,
    latency_seconds=8.0,
    warmup_seconds=2.0,
    catch_up=10_000,
)
FULL = Preset(
    kafka_records=100_000,
    cassandra_rows=50_000,
    pipeline_records=50_000,
    latency_records=1000,
    groups=8,
    levels=[4, 16, 48, 96],
    level_seconds=20.0,
    latency_seconds=30.0,
    warmup_seconds=3.0,
    catch_up=100_000,
)


def local_secret(infra: InfraSettings) -> str:
    return Path(infra.state_dir, "secrets", "client.secret").read_text().strip()


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the stack's API is and the OAuth client to use, as every benchmark takes them."""
    parser.add_argument("--url", default=os.environ.get("BACKBONE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--client-id", default=LOCAL_CLIENT_ID)
    parser.add_argument("--client-secret", help="default: the local client's secret file")


def secret_of(args: argparse.Namespace) -> str:
    return str(args.client_secret or local_secret(InfraSettings.from_env()))


def crashed_agents(extra: Extra) -> list[str]:
    """Agents that crashed in an extra worker (its log says `Crashed reason=`)."""
    try:
        text = extra.log.read_text(errors="replace")
    except OSError:
        return []
    return sorted(
        {
            line.split("Crashed reason=", 1)[1][:160]
            for line in text.splitlines()
            if "Crashed reason=" in line
        }
    )


async def add_workers(extras: ExtraProcesses, count: int, sampler: Sampler | None) -> None:
    """Start `count` extra workers, each awaited until faust reports it ready."""
    for _ in range(count):
        worker = extras.start_worker()
        if sampler is not None:
            sampler.watch("worker", worker.pid)
        took = await extras.wait_worker_ready(worker)
        phase(f"extra worker pid {worker.pid} ready after {took:.1f}s")
        await asyncio.sleep(2.0)  # an agent that cannot start crashes right after Ready
        crashed = crashed_agents(worker)
        if crashed:
            raise RuntimeError(
                f"an agent crashed in the extra worker (log {worker.log}): {crashed[0]}. The "
                "extra worker runs the code in the working tree; if it differs from the "
                "running worker's (a newer schema), run `backbone provision` or restart "
                "the stack before scaling out."
            )


async def add_apis(extras: ExtraProcesses, count: int, sampler: Sampler | None) -> list[str]:
    urls = []
    for _ in range(count):
        api = extras.start_api()
        if sampler is not None:
            sampler.watch("api", api.pid)
        took = await extras.wait_api_ready(api)
        phase(f"extra API pid {api.pid} on {api.url} ready after {took:.1f}s")
        assert api.url is not None
        urls.append(api.url)
    return urls


async def settle(
    clients: Clients, hub: MailboxStreams, groups: list[Group], timeout_s: float = 180.0
) -> float:
    """Wait until the rebalance after a membership change has settled: three rounds in a
    row in which one message from every group reaches its recipient within 2 s (every
    group's keys land on different partitions, so all owners must be working)."""
    sender = Sender(clients, hub, groups, 1)
    started = time.monotonic()
    good = 0
    k = 0
    while good < 3:
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the rebalance did not settle within {timeout_s:.0f}s")
        hub.reset()
        t0 = time.monotonic()
        sent = await asyncio.gather(*(sender.send(k + i) for i in range(len(groups))))
        k += len(groups)
        delivered = await hub.wait_all(10.0)
        ok = delivered and all(s.message_id for s in sent) and time.monotonic() - t0 < 2.0
        good = good + 1 if ok else 0
        if not ok:
            await asyncio.sleep(1.0)
    hub.reset()
    return time.monotonic() - started


class PhaseMarker:
    """Phase boundaries: closes the CPU/memory account of the sampler and the worker's
    stage lags of the phase that ends (attached to the same phase record)."""

    def __init__(self, sampler: Sampler, metrics_port: int) -> None:
        self.sampler = sampler
        self.metrics_port = metrics_port
        self._metrics: Snapshot | None = worker_metrics.scrape(metrics_port)

    def mark(self, name: str) -> None:
        recorded = self.sampler.mark(name)
        now = worker_metrics.scrape(self.metrics_port)
        if recorded and self._metrics is not None and now is not None:
            lags = worker_metrics.between(self._metrics, now)
            self.sampler.phases[-1]["worker_lag_ms"] = dict(lags)
        self._metrics = now


def make_extras(code_rev: str | None, infra: InfraSettings, needed: bool) -> ExtraProcesses:
    """The keeper of extra processes; from `code_rev` (a git revision) when given. Warns
    when the working tree's backbone code changed after the running worker started: extra
    processes would then run other code than it, in the same consumer groups."""
    if code_rev:
        code = export_revision(code_rev, Path(tempfile.mkdtemp(prefix="bench-code-")))
        phase(f"extra processes run the code of {code_rev} (exported to {code})")
        return ExtraProcesses(code)
    workers = stack_pids(infra).get("worker", [])
    changed = code_changed_since(workers[0]) if needed and workers else []
    if changed:
        phase(
            f"warning: {len(changed)} backbone source file(s) changed since the running "
            f"worker started (e.g. {changed[0]}); extra processes run the working tree. "
            "--code-rev <git rev> runs them from the revision the stack runs."
        )
    return ExtraProcesses()


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the running main task, like Ctrl-C does under `asyncio.run`: the
    `finally` blocks run and the caller stops the extra processes."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def fresh_identities_check(clients: Clients, n: int = 6) -> dict[str, Any]:
    """`n` identities made now, each creating a relationship template at once: with several
    workers the template's decider may run on another worker than the identity's, and must
    get the new identity's data key from the shared key table. Counts what was answered
    201 and what was not (a 503 after `BACKBONE_COMMAND_TIMEOUT` when the key never came)."""
    parties = await asyncio.gather(*(new_party(clients, i) for i in range(n)))

    async def template(party: Party) -> tuple[int, float]:
        started = time.perf_counter()
        answer = await clients.of(party).post(
            "/api/v2/RelationshipTemplates", json={"content": "eA=="}, headers=party.headers
        )
        return answer.status_code, time.perf_counter() - started

    outcomes = await asyncio.gather(*(template(p) for p in parties))
    statuses = Counter(str(status) for status, _ in outcomes)
    return {
        "identities": n,
        "created_201": statuses.get("201", 0),
        "statuses": dict(statuses),
        "max_ms": round(1000 * max(s for _, s in outcomes), 1),
    }


def code_info(pids: dict[str, list[int]]) -> dict[str, Any]:
    """Which code a run measured: the checkout's HEAD now, when the stack's worker and API
    started, and the source files changed after the worker started (others may be
    committing while the stack keeps running older code)."""
    started = {
        kind: datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
        for kind in ("worker", "api")
        if pids.get(kind) and (at := started_at(pids[kind][0])) is not None
    }
    worker = pids.get("worker")
    return {
        "head": git_head(),
        "stack_started": started,
        "changed_since_worker_started": code_changed_since(worker[0]) if worker else [],
    }
