"""`connector serve`: the REST API, the mailbox consumer and the webhook dispatcher of one
identity, in one process.

The mailbox consumer and the dispatcher are tasks of the API's lifespan: they start before
the first request is served and are cancelled on shutdown. Everything they have done is in
SQLite already (cursor, messages, outbox), so a stop at any moment loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from connector.api import create_app
from connector.backbone_client import BackboneClient, BackboneError, DeviceSession
from connector.config import ConnectorSettings, SettingsError
from connector.identities import LocalIdentity, load_identities
from connector.keystore import Keystore, private_database
from connector.mailbox_consumer import MailboxConsumer, drop_reason
from connector.service import ConnectorService
from connector.store import SqliteStore
from connector.webhooks import Outbox, WebhookDispatcher, parse_targets

log = logging.getLogger("connector")

MIN_API_KEY_CHARS = 24


class ServeError(Exception):
    """A setting that keeps `serve` from starting; the message says which."""


def pick_identity(identities: list[LocalIdentity], wanted: str) -> LocalIdentity:
    if not identities:
        raise ServeError("no identity yet: run `connector init` first")
    if not wanted:
        return identities[0]
    for identity in identities:
        if identity.address == wanted:
            return identity
    raise ServeError(f"CONNECTOR_IDENTITY {wanted} is not one of this Connector's identities")


def check(settings: ConnectorSettings, keystore: Keystore) -> LocalIdentity:
    """Every setting `serve` needs, checked before anything starts; returns the identity
    it will act for. Raises ServeError naming the setting to fix."""
    if len(settings.api_key) < MIN_API_KEY_CHARS:
        raise ServeError(
            f"CONNECTOR_API_KEY must be set, at least {MIN_API_KEY_CHARS} characters "
            "(for example: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    try:
        settings.require_client_secret()
    except SettingsError as exc:
        raise ServeError(str(exc)) from None
    try:
        parse_targets(settings.webhooks)
    except ValueError as exc:
        raise ServeError(str(exc)) from exc
    if not settings.database.exists():
        raise ServeError(f"no identity in {settings.data_dir} yet: run `connector init` first")
    store = SqliteStore(settings.database)
    try:
        return pick_identity(load_identities(store, keystore), settings.identity)
    finally:
        store.close()


def check_listen_address(host: str, port: int) -> None:
    """Refuse a host this machine does not have, or a port something listens on, before
    uvicorn logs a traceback about it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except socket.gaierror:
            raise ServeError(f"CONNECTOR_HOST {host!r} is not a host name or address") from None
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror}): another process (another "
                "Connector?) holds CONNECTOR_PORT, or CONNECTOR_HOST is not this machine's"
            ) from None


HEALTH_CACHE_S = 5.0


class Health:
    """`GET /health` in the Enmeshed Connector's shape: each part says healthy or not, and
    the Connector is healthy only when all are. A rejected client secret shows here as
    `backboneAuthentication: unhealthy` with the reason, not as a healthy Connector whose
    every call fails. Checked at most every few seconds (monitoring polls it)."""

    def __init__(
        self,
        store: SqliteStore,
        http: httpx.AsyncClient,
        session: DeviceSession,
        consumer: MailboxConsumer,
    ) -> None:
        self.store = store
        self.http = http
        self.session = session
        self.consumer = consumer
        self._last: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> dict[str, Any]:
        async with self._lock:
            if self._last is None or time.monotonic() - self._last[0] > HEALTH_CACHE_S:
                self._last = (time.monotonic(), await self._check())
            return self._last[1]

    async def _check(self) -> dict[str, Any]:
        services: dict[str, str] = {}
        problems: dict[str, str] = {}

        def part(name: str, problem: str | None) -> None:
            services[name] = "unhealthy" if problem else "healthy"
            if problem:
                problems[name] = problem

        try:
            self.store.ping()
            part("database", None)
        except Exception as exc:
            part("database", f"SQLite failed ({type(exc).__name__}: {exc})")
        try:
            answer = await self.http.get("/health", timeout=3)
            ok = answer.status_code == 200
            part("backboneConnection", None if ok else f"/health answered {answer.status_code}")
        except httpx.HTTPError as exc:
            part("backboneConnection", drop_reason(exc))
        if problems.get("backboneConnection"):
            part("backboneAuthentication", "not checked: the backbone cannot be reached")
        else:
            try:
                await self.session.token()
                part("backboneAuthentication", None)
            except (BackboneError, httpx.HTTPError) as exc:
                part("backboneAuthentication", drop_reason(exc))
        report: dict[str, Any] = {"isHealthy": not problems, "services": services}
        if problems:
            report["problems"] = problems
        report["mailboxStream"] = {
            "connected": self.consumer.connected,
            **({"lastError": self.consumer.last_error} if self.consumer.last_error else {}),
        }
        return report


def build(settings: ConnectorSettings, keystore: Keystore) -> FastAPI:
    identity = check(settings, keystore)
    targets = parse_targets(settings.webhooks)
    private_database(settings.database)
    store = SqliteStore(settings.database)
    http = httpx.AsyncClient(base_url=settings.backbone_url, timeout=30)
    client = BackboneClient(http, settings.client_id, settings.client_secret)
    session = DeviceSession(client, identity.username, identity.password)
    outbox = Outbox(settings.database)
    service = ConnectorService(identity, session, store, keystore, outbox, targets)
    hooks_http = httpx.AsyncClient(timeout=10)
    dispatcher = WebhookDispatcher(outbox, targets, hooks_http)
    service.on_event = dispatcher.wake
    consumer = MailboxConsumer(http, identity.address, session.token, store, service.handle_entry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(consumer.run(), name="mailbox"),
            asyncio.create_task(dispatcher.run(), name="webhooks"),
        ]
        log.info(
            "connector serving",
            extra={"address": identity.address, "webhook_targets": len(targets)},
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await hooks_http.aclose()
            await http.aclose()
            outbox.close()
            store.close()

    app = create_app(service, settings.api_key, lifespan)
    app.state.consumer = consumer
    app.state.health = Health(store, http, session, consumer)
    return app


def serve(settings: ConnectorSettings, keystore: Keystore) -> None:
    check_listen_address(settings.host, settings.port)
    app = build(settings, keystore)
    config: dict[str, Any] = {"host": settings.host, "port": settings.port, "log_level": "info"}
    uvicorn.run(app, **config)
