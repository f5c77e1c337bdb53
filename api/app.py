"""The backbone's REST API: `uvicorn api.app:create_app --factory` (or `backbone api`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from api import errors, metrics
from api.routers import (
    auth,
    challenges,
    devices,
    files,
    health,
    identities,
    mailbox,
    messages,
    relationships,
    sync,
    templates,
    tokens,
)
from api.state import ApiState
from backbone.settings import BackboneSettings
from streams.cassandra_io import connect

log = logging.getLogger("backbone.api")

# Bodies larger than this are refused before they are read (413).
MAX_BODY_BYTES = 64 * 1024


def create_app(settings: BackboneSettings | None = None) -> FastAPI:
    settings = settings or BackboneSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cluster, session = await asyncio.to_thread(
            connect, settings.cluster, settings.cluster.keyspace
        )
        state = ApiState.build(settings, cluster, session)
        await state.bus.start()
        await state.mailbox.start()
        app.state.backbone = state
        log.info("api ready", extra={"kafka": settings.cluster.kafka_bootstrap})
        try:
            yield
        finally:
            await state.mailbox.stop()
            await state.bus.stop()
            await asyncio.to_thread(cluster.shutdown)

    app = FastAPI(
        title="backbone",
        version="0.1.0",
        description="An event-sourced, zero-knowledge backbone with the Enmeshed Backbone's API.",
        lifespan=lifespan,
    )
    errors.install(app)
    routers = (health, challenges, identities, devices, auth, files, tokens, templates,
               relationships, messages, mailbox, sync)  # fmt: skip
    for module in routers:
        app.include_router(module.router)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        limit = MAX_BODY_BYTES
        if request.url.path == "/api/v1/Files" and request.method == "POST":
            limit += settings.max_file_bytes  # the file and its form fields
        if length is not None and (not length.isdigit() or int(length) > limit):
            return errors.response(
                413, "error.platform.requestTooLarge", f"bodies are limited to {limit} bytes"
            )
        if length is None and "chunked" in request.headers.get("transfer-encoding", ""):
            # A body without a length could not be bounded before it is read.
            return errors.response(411, "error.platform.lengthRequired", "send Content-Length")
        started = time.monotonic()
        response = await call_next(request)
        elapsed = time.monotonic() - started
        route = _route_template(request)
        metrics.REQUESTS.labels(route, request.method, str(response.status_code)).observe(elapsed)
        log.info(
            "request",
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "ms": round(elapsed * 1000, 1),
            },
        )
        return response

    return app


def _route_template(request: Request) -> str:
    # The template (/api/v1/Devices/{device_id}), not the path: bounded label cardinality,
    # and no ids in the metrics or logs.
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))
