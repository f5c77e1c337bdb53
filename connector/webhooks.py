"""Webhooks: how the Connector tells the organization's business systems about events.

An event (`MessageReceived`, `RelationshipRequested`, ...) is first written to an outbox in
the Connector's SQLite file, one delivery row per matching target, ideally in the same
transaction as the change that caused it; `WebhookDispatcher` then POSTs it. So an event is
never lost to a crash or restart, and it may arrive more than once (a crash between the
receiver's 2xx and our record of it): receivers dedupe on `X-Connector-Event-Id`, which is
the same for every attempt and every target.

Each request is signed: `X-Connector-Signature: sha256=<hex HMAC-SHA256>` over
`<X-Connector-Timestamp>.<body>` with the target's secret. A receiver checks it with
`verify_signature`, which also refuses old timestamps, so a captured request cannot be
replayed later.

A failed delivery is retried with capped exponential backoff and given up after
`MAX_ATTEMPTS` (after 1.3 to 1.8 hours with the defaults). Deliveries to one target keep
their order: a later event waits until the earlier one is delivered or given up. Targets do
not wait for one another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from connector.store import SqliteDatabase

log = logging.getLogger("connector.webhooks")

MAX_ATTEMPTS = 12
BASE_BACKOFF_S = 30.0
MAX_BACKOFF_S = 15 * 60.0
DELIVERY_TIMEOUT_S = 10.0
SIGNATURE_TOLERANCE_S = 300.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    target_url TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    given_up_at TEXT,
    last_error TEXT,
    UNIQUE (event_id, target_url)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_pending
    ON webhook_deliveries (target_url, id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
"""

_TARGET_KEYS = frozenset({"url", "secret", "events", "name"})


def _safe_url(url: str) -> str:
    """The URL without user info, query or fragment, which may carry credentials: for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: bytes
    events: frozenset[str] = frozenset()  # empty: all event types
    name: str = ""

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    @property
    def label(self) -> str:
        return self.name or _safe_url(self.url)

    def __repr__(self) -> str:
        return (
            f"WebhookTarget(url={_safe_url(self.url)!r}, secret=<redacted>, "
            f"events={sorted(self.events)!r}, name={self.name!r})"
        )


def parse_targets(raw: str) -> list[WebhookTarget]:
    """Targets from `CONNECTOR_WEBHOOKS`, a JSON list of
    `{"url", "secret", "events"?, "name"?}`; empty or blank means no webhooks.

    Unknown keys are refused, so that a misspelt `"event"` does not quietly send every
    event type. Messages never quote a secret.
    """
    if not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CONNECTOR_WEBHOOKS is not valid JSON: {exc.msg}") from None
    if not isinstance(items, list):
        raise ValueError("CONNECTOR_WEBHOOKS must be a JSON list of targets")
    targets: list[WebhookTarget] = []
    for i, item in enumerate(items):
        where = f"CONNECTOR_WEBHOOKS[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object with url and secret")
        unknown = set(item) - _TARGET_KEYS
        if unknown:
            raise ValueError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        url = item.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError(f"{where} needs a url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: url must be an http or https URL with a host")
        secret = item.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"{where} ({_safe_url(url)}) needs a non-empty secret")
        events = item.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
            raise ValueError(f"{where}: events must be a list of event type names")
        name = item.get("name", "")
        if not isinstance(name, str):
            raise ValueError(f"{where}: name must be a string")
        if any(t.url == url for t in targets):
            # Deliveries name their target by URL, so two targets with one URL would be one.
            raise ValueError(f"{where}: url {_safe_url(url)} is listed twice")
        targets.append(WebhookTarget(url, secret.encode(), frozenset(events), name))
    return targets


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`: binding the timestamp
    into the MAC is what lets receivers refuse replays."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    header: str,
    now: float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """True if `header` signs `body` at `timestamp` and the timestamp lies within
    `tolerance_s` of `now` (either way: clocks differ)."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


def backoff_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failure: doubling from `BASE_BACKOFF_S`,
    capped at `MAX_BACKOFF_S`, with jitter below the cap so that deliveries that failed
    together (a receiver was down) do not all come back in the same second."""
    delay = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2.0 ** max(0, attempts - 1))
    return delay * random.uniform(0.75, 1.0)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    target_url: str
    attempts: int
    created_at: str


class Outbox:
    """Webhook deliveries waiting in the Connector's SQLite file.

    It opens a connection of its own next to the store's (`connector.store.SqliteDatabase`):
    SQLite in WAL mode lets the two share the file, and the default busy timeout lets one
    writer wait for the other.
    """

    def __init__(
        self,
        db_path: Path,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff: Callable[[int], float] = backoff_delay,
    ) -> None:
        self._path = db_path
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._database = SqliteDatabase(db_path, SCHEMA)
        self._transaction = self._database.transaction
        self._query = self._database.run

    def close(self) -> None:
        self._database.close()

    def _is_our_file(self, conn: sqlite3.Connection) -> bool:
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main" and file:
                with contextlib.suppress(OSError):
                    return os.path.samefile(file, self._path)
        return False

    def enqueue(
        self,
        event_type: str,
        payload: dict[str, Any],
        targets: list[WebhookTarget],
        conn: sqlite3.Connection | None = None,
    ) -> str:
        """Record `event_type` with `payload` for every target that wants it; returns the
        event id (shared by all its deliveries).

        With `conn`, the rows go through that connection and so commit or roll back with
        the caller's transaction; it must be a connection to this outbox's database file.
        """
        event_id = uuid.uuid4().hex
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        created_at = _iso_now()
        urls = list(dict.fromkeys(t.url for t in targets if t.wants(event_type)))
        # next_attempt_at 0: due at once, whatever the dispatcher's clock says.
        rows = [(event_id, event_type, data, url, 0.0, created_at) for url in urls]
        sql = (
            "INSERT INTO webhook_deliveries"
            " (event_id, event_type, payload, target_url, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        if conn is not None:
            if not self._is_our_file(conn):
                raise ValueError("enqueue: conn is not connected to the outbox's database")
            conn.executemany(sql, rows)
        elif rows:
            with self._transaction() as db:
                db.executemany(sql, rows)
        return event_id

    def due(self, now: float, limit: int = 100, target_url: str | None = None) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest first, optionally for one target.

        A delivery waiting behind an older pending one to the same target that is not due
        yet (it failed and backs off) is left out: deliveries to a target keep their order.
        """
        rows = self._query(
            "SELECT d.id, d.event_id, d.event_type, d.payload, d.target_url, d.attempts,"
            " d.created_at FROM webhook_deliveries AS d"
            " WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL AND d.next_attempt_at <= ?"
            " AND (? IS NULL OR d.target_url = ?)"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e"
            "   WHERE e.target_url = d.target_url AND e.id < d.id"
            "   AND e.delivered_at IS NULL AND e.given_up_at IS NULL AND e.next_attempt_at > ?)"
            " ORDER BY d.id LIMIT ?",
            (now, target_url, target_url, now, limit),
        )
        return [
            Delivery(id_, event_id, kind, json.loads(payload), url, attempts, created)
            for id_, event_id, kind, payload, url, attempts, created in rows
        ]

    def delivered(self, delivery_id: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE webhook_deliveries SET delivered_at = ?"
                " WHERE id = ? AND delivered_at IS NULL AND given_up_at IS NULL",
                (_iso_now(), delivery_id),
            )

    def failed(self, delivery_id: int, now: float, error: str) -> None:
        """Count a failed attempt and schedule the next one; after `max_attempts` give the
        delivery up (it stays in the table for inspection, with its last error)."""
        error = error[:500]
        with self._transaction() as db:
            row = db.execute(
                "SELECT attempts, event_id, event_type, target_url FROM webhook_deliveries"
                " WHERE id = ? AND delivered_at IS NULL AND given_up_at IS NULL",
                (delivery_id,),
            ).fetchone()
            if row is None:
                return
            attempts, event_id, event_type, url = row[0] + 1, row[1], row[2], row[3]
            if attempts < self._max_attempts:
                db.execute(
                    "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?,"
                    " last_error = ? WHERE id = ?",
                    (attempts, now + self._backoff(attempts), error, delivery_id),
                )
                return
            db.execute(
                "UPDATE webhook_deliveries SET attempts = ?, given_up_at = ?, last_error = ?"
                " WHERE id = ?",
                (attempts, _iso_now(), error, delivery_id),
            )
        log.error(
            "webhook delivery given up",
            extra={
                "delivery_id": delivery_id,
                "event_id": event_id,
                "event_type": event_type,
                "target": _safe_url(url),
                "attempts": attempts,
                "error": error,
            },
        )

    def pending_count(self) -> int:
        rows = self._query(
            "SELECT count(*) FROM webhook_deliveries"
            " WHERE delivered_at IS NULL AND given_up_at IS NULL"
        )
        return int(rows[0][0])

    def pending_by_target(self) -> dict[str, int]:
        """Pending deliveries per target URL: for health checks and spotting stale targets."""
        rows = self._query(
            "SELECT target_url, count(*) FROM webhook_deliveries"
            " WHERE delivered_at IS NULL AND given_up_at IS NULL GROUP BY target_url"
        )
        return {url: int(count) for url, count in rows}


class WebhookDispatcher:
    """Delivers the outbox's due deliveries to the configured targets.

    Give it an `httpx.AsyncClient` of its own, not the backbone client: a client's default
    headers (authorization) would go to every receiver too.
    """

    def __init__(
        self,
        outbox: Outbox,
        targets: list[WebhookTarget],
        http: httpx.AsyncClient,
        poll_interval_s: float = 1.0,
        *,
        timeout_s: float = DELIVERY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        batch: int = 100,
    ) -> None:
        self._outbox = outbox
        self._targets = {t.url: t for t in targets}
        self._http = http
        self._poll_interval_s = poll_interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._batch = batch
        self._wakeup = asyncio.Event()
        self._pass = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checked_targets = False

    def wake(self) -> None:
        """Start a pass now instead of at the next poll; safe to call from any thread."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        """Deliver until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            # Cleared before the pass, so a wake() during it brings on another one at once.
            self._wakeup.clear()
            try:
                await self.deliver_due()
            except Exception:  # the database was busy or worse: keep trying, loudly
                log.exception("webhook dispatch pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)

    async def deliver_due(self) -> int:
        """One pass over all targets, side by side; returns how many were delivered."""
        async with self._pass:
            if not self._checked_targets:
                self._warn_about_unconfigured_targets()
                self._checked_targets = True
            now = self._clock()
            counts = await asyncio.gather(
                *(self._deliver_to(target, now) for target in self._targets.values())
            )
            return sum(counts)

    def _warn_about_unconfigured_targets(self) -> None:
        for url, count in self._outbox.pending_by_target().items():
            if url not in self._targets:
                # Kept, not rerouted: the events were meant for that receiver only.
                log.warning(
                    "webhook deliveries wait for a target that is no longer configured",
                    extra={"target": _safe_url(url), "pending": count},
                )

    async def _deliver_to(self, target: WebhookTarget, now: float) -> int:
        delivered = 0
        for delivery in self._outbox.due(now, self._batch, target.url):
            if not await self._post(target, delivery):
                break  # later events to this target wait behind this one: order holds
            delivered += 1
        return delivered

    async def _post(self, target: WebhookTarget, delivery: Delivery) -> bool:
        body = json.dumps(
            {
                "id": delivery.event_id,
                "type": delivery.event_type,
                "createdAt": delivery.created_at,
                "data": delivery.payload,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Connector-Event-Id": delivery.event_id,
            "X-Connector-Event-Type": delivery.event_type,
            "X-Connector-Timestamp": timestamp,
            "X-Connector-Signature": signature(target.secret, timestamp, body),
        }
        try:
            answer = await self._http.post(
                target.url,
                content=body,
                headers=headers,
                timeout=self._timeout_s,
                follow_redirects=False,  # a redirect may point anywhere: not a delivery
            )
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            # The class only: exception texts can quote the URL and its credentials.
            error = type(exc).__name__
        else:
            if answer.is_success:
                self._outbox.delivered(delivery.id)
                return True
            error = f"HTTP {answer.status_code}"
        log.warning(
            "webhook delivery failed",
            extra={
                "target": target.label,
                "delivery_id": delivery.id,
                "event_id": delivery.event_id,
                "attempt": delivery.attempts + 1,
                "error": error,
            },
        )
        self._outbox.failed(delivery.id, self._clock(), error)
        return False
