"""Limits on the password checks anyone can make the API do, shared by every API replica.

Each Argon2id check costs ~0.1-0.3 s of a core and 64 MiB. Without a limit, wrong token
passwords (`GET /Tokens/{id}?password=`) and random usernames on `/connect/token` bought
that work for free, and a per-process, per-username lock neither stopped spraying across
usernames nor held across replicas (issue 19). Three rules, each a sliding window of
*failed* checks (a client that knows its password is never slowed down):

- per username: `failed_logins_max` failures in `failed_logins_window_s` lock it (429
  `too_many_failed_logins`, as before); a successful login clears them;
- per password-protected object (token, relationship template): 10 failures in 5 minutes;
- per client address: 50 failures in 5 minutes, whatever it tried; this is the one that
  stops spraying (at most ~5% of a core per address; generous enough for an office behind
  one NAT address).

An answer over a limit is 429 with `Retry-After` (the seconds until the oldest failure
leaves the window), checked *before* the Argon2 work.

Why Kafka and not a Cassandra table: the API never writes Cassandra (no dual writes), and a
limit needs no durability, only every replica seeing every failure soon. Each replica
appends a small record per failure to the `api-limits` topic (keyed by a keyed hash of the
subject, so no address or username is on the log in the clear; kept one hour) and reads
every partition of it from its end, as the mailbox notices are read. A replica counts its
own failures at once and the others' within the topic's latency (milliseconds), so N
replicas allow at most a few requests more than one would, not N times the budget. A
replica that starts late knows only the failures after its start: a limit may reopen early
by one window at most.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from api.errors import ApiError
from api.topic_tail import TopicTail
from backbone.connections import kafka_client_kwargs

log = logging.getLogger("backbone.api.limits")

TOO_MANY = "error.platform.tooManyRequests"
# Keys kept per replica: under a spraying attack every username is a new key.
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window_s: float


PER_ADDRESS = Rule("address", 50, 300.0)
PER_PROTECTED_OBJECT = Rule("object", 10, 300.0)


class SlidingWindows:
    """Failure times per key, the oldest first. Pure: the times are given."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._times: dict[str, deque[float]] = {}

    def add(self, key: str, now: float, window_s: float) -> None:
        times = self._recent(key, now, window_s)
        times.append(now)
        if len(self._times) > self.max_keys:  # bound memory: forget the oldest key
            self._times.pop(next(iter(self._times)))

    def clear(self, key: str) -> None:
        self._times.pop(key, None)

    def wait(self, key: str, rule: Rule, now: float) -> float:
        """Seconds until one more attempt under `key` is allowed; 0 when it is now."""
        times = self._recent(key, now, rule.window_s)
        if len(times) < rule.limit:
            return 0.0
        return max(0.0, times[-rule.limit] + rule.window_s - now)

    def _recent(self, key: str, now: float, window_s: float) -> deque[float]:
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - window_s:
            times.popleft()
        return times


class SharedLimits:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        key_of: Callable[[str], str],
        login_rule: Rule,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.key_of = key_of  # a keyed hash: subjects never reach the log in the clear
        self.login_rule = login_rule
        self.instance = uuid.uuid4().hex
        self.windows = SlidingWindows()
        # The longest window: how long a failure another replica reports is kept.
        self._keep_s = max(login_rule.window_s, PER_ADDRESS.window_s, PER_PROTECTED_OBJECT.window_s)
        self._producer: AIOKafkaProducer | None = None
        self._tail = TopicTail(bootstrap, topic, self._apply, "failed checks")

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **kafka_client_kwargs(self.bootstrap), acks=1, linger_ms=5
        )
        await self._producer.start()
        await self._tail.start()

    async def stop(self) -> None:
        await self._tail.stop()
        if self._producer:
            await self._producer.stop()

    def _key(self, rule: Rule, subject: str) -> str:
        return self.key_of(f"{rule.name}:{subject}")

    def check(self, code: str, *limits: tuple[Rule, str]) -> None:
        """ApiError 429 with Retry-After when any (rule, subject) is over its limit."""
        now = time.monotonic()
        wait = max(
            (self.windows.wait(self._key(rule, subject), rule, now) for rule, subject in limits),
            default=0.0,
        )
        if wait > 0:
            raise ApiError(
                429,
                code,
                "too many failed password checks; try again later",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def failed(self, *limits: tuple[Rule, str]) -> None:
        now = time.monotonic()
        for rule, subject in limits:
            key = self._key(rule, subject)
            self.windows.add(key, now, self._keep_s)
            await self._publish(key, "fail")

    async def succeeded(self, rule: Rule, subject: str) -> None:
        key = self._key(rule, subject)
        self.windows.clear(key)
        await self._publish(key, "clear")

    async def _publish(self, key: str, op: str) -> None:
        if self._producer is None:
            return
        value = json.dumps({"i": self.instance, "op": op}).encode()
        try:
            # Handed to the producer, not awaited to the broker: the answer does not wait
            # for the other replicas to learn of it.
            await self._producer.send(self.topic, value, key=key.encode())
        except KafkaError as exc:  # a limit is best effort; the request itself goes on
            log.warning("publishing a failed check failed: %s", type(exc).__name__)

    def _apply(self, record: Any) -> None:
        key: bytes | None = record.key
        now = time.monotonic()
        try:
            body = json.loads(record.value or b"")
        except ValueError:
            return
        if key is None or not isinstance(body, dict) or body.get("i") == self.instance:
            return  # our own failures were counted when they happened
        if body.get("op") == "fail":
            self.windows.add(key.decode(), now, self._keep_s)
        elif body.get("op") == "clear":
            self.windows.clear(key.decode())
