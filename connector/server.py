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
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from connector.api import create_app
from connector.backbone_client import BackboneClient, DeviceSession
from connector.config import ConnectorSettings
from connector.identities import LocalIdentity, load_identities
from connector.keystore import Keystore
from connector.mailbox_consumer import MailboxConsumer
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


def build(settings: ConnectorSettings, keystore: Keystore) -> FastAPI:
    if len(settings.api_key) < MIN_API_KEY_CHARS:
        raise ServeError(f"CONNECTOR_API_KEY must be set, at least {MIN_API_KEY_CHARS} characters")
    try:
        targets = parse_targets(settings.webhooks) if settings.webhooks.strip() else []
    except ValueError as exc:
        raise ServeError(f"CONNECTOR_WEBHOOKS: {exc}") from exc
    store = SqliteStore(settings.database)
    identity = pick_identity(load_identities(store, keystore), settings.identity)
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
        tasks = [asyncio.create_task(consumer.run(), name="mailbox"),
                 asyncio.create_task(dispatcher.run(), name="webhooks")]  # fmt: skip
        log.info("connector serving", extra={"address": identity.address,
                                             "webhook_targets": len(targets)})  # fmt: skip
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
    return app


def serve(settings: ConnectorSettings, keystore: Keystore) -> None:
    app = build(settings, keystore)
    config: dict[str, Any] = {"host": settings.host, "port": settings.port, "log_level": "info"}
    uvicorn.run(app, **config)
