"""The backbone end to end through its real API: throughput, then latency at half of it.

What is measured, for messages of 1 KiB to 1 and to N recipients (related identities):

- *Sustained throughput.* A closed loop of `c` concurrent senders (each awaits its 201,
  then sends the next) runs for a fixed time; then the run waits until every message has
  reached every recipient's open mailbox stream. Throughput = messages answered 201 /
  (first send → last arrival on a stream). The concurrency is stepped up (`levels`) until
  it stops improving by 5%; the best level is "the maximum". Mailbox entries/s counts all
  entries a message writes (one per recipient plus the sender's `MessageSent`).
- *Latency at half the maximum.* An open-loop sender starts a message every 1/r seconds
  (r = half the maximum messages/s) whatever the previous ones do, for a fixed time.
  Latency = send start → the entry on the recipient's stream, one sample per recipient;
  "201 → stream" is recorded as well.

Errors (non-201 answers, client timeouts) are counted per status and reported, never
retried: a retry would hide exactly what a benchmark should show.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx

from bench.mailbox_streams import MailboxStreams
from bench.parties import Clients, Group, Party
from bench.progress import Progress, follow_clock
from bench.stats import LatencySummary, rate, summarize_ms

BODY = base64.b64encode(os.urandom(1024)).decode()  # 1 KiB of "ciphertext"
WRAPPED_KEY = base64.b64encode(os.urandom(48)).decode()
IMPROVEMENT = 1.05  # a concurrency level counts as better only when 5% better


class SweepPoint(TypedDict):
    concurrency: int
    messages: int
    seconds: float
    messages_per_s: float
    recipient_entries_per_s: float
    mailbox_entries_per_s: float
    send_seconds: float
    errors: dict[str, int]
    undelivered: int


class LatencyResult(TypedDict, total=False):
    rate_per_s: float
    seconds: float
    sent: int
    ok: int
    errors: dict[str, int]
    lost: int
    scheduler_lag_max_ms: float
    send_to_stream: LatencySummary
    created_to_stream: LatencySummary
    send_to_201: LatencySummary


@dataclass(frozen=True)
class Sent:
    status: str  # "201", another status code, or the client exception's name
    message_id: str | None
    recipients: list[Party]
    started: float
    answered: float


@dataclass(frozen=True)
class EndToEndConfig:
    levels: list[int]
    level_seconds: float
    latency_seconds: float
    warmup_seconds: float = 3.0
    drain_timeout_s: float = 60.0
    # Send with `Prefer: respond-async` (202 once durable on the log) instead of waiting for
    # the projection's 201; "201" in the figures then stands for that 202.
    respond_async: bool = False


class Sender:
    """Sends message `k` from group `k % groups` to 1 recipient (rotating) or to the
    first `recipients` of the group's peers."""

    def __init__(
        self,
        clients: Clients,
        hub: MailboxStreams,
        groups: list[Group],
        recipients: int,
        respond_async: bool = False,
    ) -> None:
        self.clients = clients
        self.hub = hub
        self.groups = groups
        self.recipients = recipients
        self.prefer = {"Prefer": "respond-async"} if respond_async else {}
        self.accepted = 202 if respond_async else 201

    async def send(self, k: int) -> Sent:
        group = self.groups[k % len(self.groups)]
        if self.recipients == 1:
            to = [group.recipients[(k // len(self.groups)) % len(group.recipients)]]
        else:
            to = group.recipients[: self.recipients]
        body = {
            "recipients": [{"address": r.address, "encryptedKey": WRAPPED_KEY} for r in to],
            "body": BODY,
        }
        http = self.clients.of(group.sender)
        started = time.perf_counter()
        try:
            answer = await http.post(
                "/api/v2/Messages", json=body, headers={**group.sender.headers, **self.prefer}
            )
        except httpx.HTTPError as exc:
            return Sent(type(exc).__name__, None, to, started, time.perf_counter())
        answered = time.perf_counter()
        if answer.status_code != self.accepted:
            return Sent(str(answer.status_code), None, to, started, answered)
        message_id = str(answer.json()["result"]["id"])
        self.hub.expect(message_id, len(to))
        return Sent("201", message_id, to, started, answered)


async def closed_loop(sender: Sender, concurrency: int, seconds: float) -> SweepPoint:
    """`concurrency` senders back to back for `seconds`, then drain to the streams."""
    sender.hub.reset()
    errors: Counter[str] = Counter()
    ok = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(worker: int) -> None:
        nonlocal ok
        k = worker
        while time.perf_counter() < deadline:
            sent = await sender.send(k)
            if sent.message_id is None:
                errors[sent.status] += 1
                await asyncio.sleep(0.05)  # do not spin on a failing backbone
            else:
                ok += 1
            k += concurrency

    await asyncio.gather(*(loop(w) for w in range(concurrency)))
    sent_at = time.perf_counter()
    delivered = await sender.hub.wait_all(60.0)
    finished = sender.hub.last_arrival() if delivered else time.perf_counter()
    wall = finished - started
    n = sender.recipients
    return SweepPoint(
        concurrency=concurrency,
        messages=ok,
        seconds=round(wall, 3),
        messages_per_s=rate(ok, wall),
        recipient_entries_per_s=rate(ok * n, wall),
        mailbox_entries_per_s=rate(ok * (n + 1), wall),
        send_seconds=round(sent_at - started, 3),
        errors=dict(errors),
        undelivered=sender.hub.outstanding(),
    )


async def open_loop(sender: Sender, per_second: float, seconds: float) -> LatencyResult:
    """A message every 1/`per_second` s for `seconds`, each on its own task (open loop:
    a slow answer does not delay the next send, so queueing shows up as latency)."""
    sender.hub.reset()
    total = max(1, round(per_second * seconds))
    sends: list[asyncio.Task[Sent]] = []
    lag = 0.0
    t0 = time.perf_counter()
    for k in range(total):
        due = t0 + k / per_second
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = max(lag, time.perf_counter() - due)
        sends.append(asyncio.create_task(sender.send(k)))
    done = await asyncio.gather(*sends)
    await sender.hub.wait_all(30.0)
    return _latencies(sender.hub, done, per_second, seconds, lag)


def _latencies(
    hub: MailboxStreams, done: list[Sent], per_second: float, seconds: float, lag: float
) -> LatencyResult:
    errors = Counter(s.status for s in done if s.message_id is None)
    after_send: list[float] = []
    after_201: list[float] = []
    lost = 0
    for s in done:
        if s.message_id is None:
            continue
        arrived = hub.arrivals.get(s.message_id, {})
        for r in s.recipients:
            at = arrived.get(r.address)
            if at is None:
                lost += 1
                continue
            after_send.append(at - s.started)
            after_201.append(at - s.answered)
    result = LatencyResult(
        rate_per_s=round(per_second, 2),
        seconds=seconds,
        sent=len(done),
        ok=sum(1 for s in done if s.message_id),
        errors=dict(errors),
        lost=lost,
        scheduler_lag_max_ms=round(lag * 1000, 1),
    )
    if after_send:
        result["send_to_stream"] = summarize_ms(after_send)
        result["created_to_stream"] = summarize_ms(after_201)
        result["send_to_201"] = summarize_ms([s.answered - s.started for s in done if s.message_id])
    return result


async def _with_clock(desc: str, seconds: float, work: Any) -> Any:
    with Progress(desc, seconds, "s") as bar:
        clock = asyncio.create_task(follow_clock(bar, seconds))
        try:
            return await work
        finally:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock


async def sweep(sender: Sender, cfg: EndToEndConfig, label: str) -> list[SweepPoint]:
    """Step the concurrency up until throughput stops improving."""
    points: list[SweepPoint] = []
    best = 0.0
    for level in cfg.levels:
        point: SweepPoint = await _with_clock(
            f"{label}: {level} concurrent senders",
            cfg.level_seconds,
            closed_loop(sender, level, cfg.level_seconds),
        )
        points.append(point)
        if point["messages_per_s"] < best * IMPROVEMENT:
            break  # saturated: more senders only queue
        best = max(best, point["messages_per_s"])
    return points


def best_point(points: list[SweepPoint]) -> SweepPoint:
    return max(points, key=lambda p: p["messages_per_s"])


async def measure(
    clients: Clients,
    hub: MailboxStreams,
    groups: list[Group],
    recipients: int,
    cfg: EndToEndConfig,
    latency: bool = True,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Sweep for the maximum, then (optionally) latency at half of it. `on_phase` is told
    when the sweep and the latency run start (for per-phase CPU and lag accounts)."""
    sender = Sender(clients, hub, groups, recipients, cfg.respond_async)
    label = f"e2e {recipients} rcpt"
    if cfg.warmup_seconds:
        await _with_clock(
            f"{label}: warm-up", cfg.warmup_seconds, closed_loop(sender, 4, cfg.warmup_seconds)
        )
    if on_phase is not None:
        on_phase(f"{label} throughput sweep")
    points = await sweep(sender, cfg, label)
    best = best_point(points)
    result: dict[str, Any] = {"recipients": recipients, "sweep": points, "max": best}
    if latency and best["messages_per_s"] > 0:
        half = best["messages_per_s"] / 2
        if on_phase is not None:
            on_phase(f"{label} latency at half max")
        result["latency"] = await _with_clock(
            f"{label}: latency at {half:.0f} msg/s",
            cfg.latency_seconds,
            open_loop(sender, half, cfg.latency_seconds),
        )
    return result
