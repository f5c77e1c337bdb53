"""The backbone's REST API: `uvicorn api.app:create_app --factory` (or `backbone api`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import errors, openapi, versioning
from api.keyspace_gate import KeyspaceGate
from api.observe import Observe
from api.routers import (
    announcements,
    auth,
    challenges,
    deletion_processes,
    devices,
    files,
    health,
    identities,
    mailbox,
    messages,
    relationships,
    sse,
    sync,
    templates,
    tokens,
    version,
)
from api.state import ApiState
from backbone.replay.pointer import ActiveKeyspace
from backbone.settings import BackboneSettings
from store.cassandra import connect

log = logging.getLogger("backbone.api")


def create_app(settings: BackboneSettings | None = None) -> FastAPI:
    settings = settings or BackboneSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cluster, session = await asyncio.to_thread(
            connect, settings.cluster, settings.cluster.keyspace
        )
        # Keyspace switch-over (backbone/replay/pointer.py): the session follows the pointer.
        keyspace = await ActiveKeyspace.start(settings.cluster.keyspace, "api", cluster, session)
        watch = asyncio.create_task(keyspace.watch())
        state = ApiState.build(settings, keyspace)
        await state.bus.start()
        await state.mailbox.start()
        await state.limits.start()
        app.state.backbone = state
        log.info("api ready", extra={"kafka": settings.cluster.kafka_bootstrap})
        try:
            yield
        finally:
            await state.limits.stop()
            await state.mailbox.stop()
            await state.bus.stop()
            watch.cancel()
            await keyspace.close()
            await asyncio.to_thread(cluster.shutdown)

    # Swagger UI's and ReDoc's files come with the API (fastapi-offline), not from a CDN: the
    # docs work on a machine without internet.
    app = FastAPIOffline(
        title="backbone",
        version="0.1.0",
        description="An event-sourced, zero-knowledge backbone with the Enmeshed Backbone's API.",
        lifespan=lifespan,
    )
    errors.install(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    for unversioned in (health, auth):
        app.include_router(unversioned.router)
    # Every other router under /api/v1 and /api/v2 (api/versioning.py says how they differ).
    # The order of mounting is the order of matching: FastAPI tries a request against each
    # route in turn, measured at ~5 us each, and a send to /api/v2/Messages tried 80 routes
    # (0.4 ms, a tenth of the API's CPU for a send). Messages and the mailbox, the requests
    # that come with every message, are found first (issue 17).
    versioned = (
        messages,
        mailbox,
        challenges,
        identities,
        devices,
        files,
        tokens,
        templates,
        relationships,
        sync,
        sse,
        version,
        announcements,
        deletion_processes,
    )
    for module in versioned:
        versioning.mount(app, module.router)

    app.add_middleware(KeyspaceGate)  # holds requests during a keyspace switch
    app.add_middleware(Observe, max_file_bytes=settings.max_file_bytes)
    openapi.install(app)

    @app.exception_handler(405)
    async def _method_not_allowed(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's `Allow` names the methods of the first route of the path only; a path
        # served by several routes (GET and PUT /Mailbox/Cursor) lists them all here.
        allowed = openapi.allowed_methods(app, request.url.path)
        return errors.response(
            405,
            "error.platform.methodNotAllowed",
            str(exc.detail),
            {"Allow": ", ".join(allowed)},
        )

    return app
