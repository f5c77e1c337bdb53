"""Follows an identity's mailbox stream from the stored cursor, hands each entry to a
handler, then records it: at-least-once delivery from the backbone, made effectively once
by the store's handled-entries table. A handler that must not run twice after a crash
between its effect and the record writes its effect in the same SQLite transaction.

Order per entry: handle, record as handled (local cursor moves), and every `ACK_EVERY`
entries or when the stream goes idle, acknowledge the cursor on the backbone
(`PUT /api/v2/Mailbox/Cursor`) so that other devices and a reinstalled Connector know where
this one stands. A dropped connection or a backbone
restart is retried with exponential backoff; on reconnect the stream resumes after the
local cursor (`Last-Event-ID`), so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from connector.backbone_client import BackboneError
from connector.store import SqliteStore

log = logging.getLogger("connector.mailbox")

Handler = Callable[[dict[str, Any]], Awaitable[None]]
TokenSource = Callable[[], Awaitable[str]]

ACK_EVERY = 50  # entries between cursor acknowledgements on the backbone
MAX_BACKOFF_S = 30.0


@dataclass
class MailboxConsumer:
    http: httpx.AsyncClient
    address: str
    token: TokenSource
    store: SqliteStore
    handler: Handler
    ack_every: int = ACK_EVERY
    # The stream and an on-demand catch-up may meet the same entry: one handles it at a time.
    _handling: asyncio.Lock = field(default_factory=asyncio.Lock)
    connected: bool = False  # the stream is open now
    last_error: str = ""  # why it last dropped (for the log and /health), never a secret

    async def run(self) -> None:
        """Consume until cancelled."""
        backoff = 0.5
        while True:
            try:
                await self._follow()
                backoff = 0.5
            except Exception as exc:
                # The backbone or the network away, or a handler's transient failure: the
                # entry was not recorded as handled, so it comes again.
                self.connected = False
                self.last_error = drop_reason(exc)
                log.warning(
                    "mailbox stream dropped (%s); reconnecting in %.1fs",
                    self.last_error,
                    backoff,
                    extra={
                        "error": type(exc).__name__,
                        "reason": self.last_error,
                        "retry_in_s": backoff,
                    },
                )
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _follow(self) -> None:
        cursor = self.store.cursor(self.address)
        headers = {
            "Authorization": f"Bearer {await self.token()}",
            "Accept": "text/event-stream",
            "Last-Event-ID": str(cursor),
        }
        since_ack = 0
        async with self.http.stream(
            "GET", "/api/v2/Mailbox", headers=headers, timeout=httpx.Timeout(10, read=60)
        ) as stream:
            if stream.status_code == 401:  # the token expired: a fresh one next round
                raise httpx.HTTPError("the backbone rejected the bearer token (401)")
            stream.raise_for_status()
            self.connected = True
            async for line in stream.aiter_lines():
                if line.startswith(":") and since_ack:  # a keep-alive: the stream is idle
                    await self.acknowledge(cursor)
                    since_ack = 0
                if not line.startswith("data: "):
                    continue
                entry = json.loads(line[6:])
                if not await self._handle(entry):
                    continue
                cursor = entry["index"]
                since_ack += 1
                if since_ack >= self.ack_every:
                    await self.acknowledge(cursor)
                    since_ack = 0

    async def _handle(self, entry: dict[str, Any]) -> bool:
        async with self._handling:
            if entry["index"] <= self.store.cursor(self.address):
                return False
            await self.handler(entry)
            self.store.mark_handled(self.address, entry["index"])
            return True

    async def catch_up(self) -> int:
        """Page through everything after the local cursor now (the stream would get there
        too; this is for "sync now" and for checking). Returns how many were handled."""
        handled = 0
        while True:
            since = self.store.cursor(self.address)
            answer = await self.http.get(
                f"/api/v2/Mailbox?since={since}&limit=1000",
                headers={"Authorization": f"Bearer {await self.token()}"},
            )
            answer.raise_for_status()
            entries = answer.json()["result"]
            for entry in entries:
                handled += await self._handle(entry)
            if not entries:
                break
        if handled:
            await self.acknowledge(self.store.cursor(self.address))
        return handled

    async def acknowledge(self, index: int) -> None:
        try:
            await self.http.put(
                "/api/v2/Mailbox/Cursor",
                json={"index": index},
                headers={"Authorization": f"Bearer {await self.token()}"},
            )
        except httpx.HTTPError as exc:  # the local cursor is the truth; this one catches up
            log.warning("cursor acknowledgement failed", extra={"error": type(exc).__name__})


def drop_reason(exc: BaseException) -> str:
    """Why the stream dropped, in words an operator can act on. Built from status codes,
    error codes and exception types only: never a token, password or secret."""
    if isinstance(exc, BackboneError):
        if exc.code == "invalid_client":
            return (
                f"the backbone refused the Connector's client credentials ({exc.status} "
                "invalid_client): check CONNECTOR_CLIENT_ID and CONNECTOR_CLIENT_SECRET"
            )
        if exc.code == "invalid_grant":
            return (
                f"the backbone refused the device's login ({exc.status} invalid_grant): "
                "this Connector's device was deleted, or belongs to another backbone"
            )
        return f"the backbone answered {exc.status} {exc.code} when logging in"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the backbone answered {exc.response.status_code} on the mailbox stream"
    if isinstance(exc, httpx.TransportError):
        where = ""
        if _has_request(exc):  # scheme, host and port only: no path, query or user info
            where = f" at {exc.request.url.scheme}://{exc.request.url.netloc.decode()}"
        return f"cannot reach the backbone{where} ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return f"handling an entry failed ({type(exc).__name__})"


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 (raises when the error carries no request)
    except RuntimeError:
        return False
    return True
