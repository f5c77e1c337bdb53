"""The ASGI middleware around every request: body-size limits first, then metrics and the
request log.

A plain ASGI class rather than `@app.middleware("http")`: Starlette's `BaseHTTPMiddleware`
runs each request through a task group and a memory stream, which cost the API a share of
its CPU per request (py-spy under the benchmark's load).
"""

from __future__ import annotations

import logging
import time

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, metrics
from api.versioning import ROUTE_KEY

log = logging.getLogger("backbone.api")

# Bodies larger than this are refused before they are read (413).
MAX_BODY_BYTES = 64 * 1024


class Observe:
    def __init__(self, app: ASGIApp, max_file_bytes: int) -> None:
        self.app = app
        self.max_file_bytes = max_file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        started = time.monotonic()
        answered = False

        async def observed_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                # Measured to the response's start, so a mailbox stream counts its wait for
                # the first page, not the hour it stays open.
                answered = True
                _record(scope, message["status"], time.monotonic() - started)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            if not answered:
                _record(scope, 500, time.monotonic() - started)
            raise

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        limit = MAX_BODY_BYTES
        if scope["path"] in ("/api/v1/Files", "/api/v2/Files") and scope["method"] == "POST":
            limit += self.max_file_bytes  # the file and its form fields
        # ASCII digits only: `isdigit()` also takes `²`, which `int()` refuses (a 500).
        if length is not None and (
            not (length.isascii() and length.isdigit()) or int(length) > limit
        ):
            return errors.response(
                413, "error.platform.requestTooLarge", f"bodies are limited to {limit} bytes"
            )
        if length is None and "chunked" in headers.get("transfer-encoding", ""):
            # A body without a length could not be bounded before it is read.
            return errors.response(411, "error.platform.lengthRequired", "send Content-Length")
        return None


def _record(scope: Scope, status: int, elapsed: float) -> None:
    # The route template (/api/v1/Devices/{device_id}), not the path: bounded label
    # cardinality, and no ids in the metrics or logs.
    route = str(scope.get(ROUTE_KEY) or getattr(scope.get("route"), "path", "unmatched"))
    method = scope["method"]
    metrics.REQUESTS.labels(route, method, str(status)).observe(elapsed)
    log.info(
        "request",
        extra={"method": method, "route": route, "status": status, "ms": round(elapsed * 1000, 1)},
    )
