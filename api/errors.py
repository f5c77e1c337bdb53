"""Errors in the Enmeshed Backbone's shape: {"error": {"id", "code", "message", "docs", "time"}}."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Literal

from aiokafka.errors import KafkaError
from cassandra import OperationTimedOut, RequestExecutionException
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import error_body, http_error_code

log = logging.getLogger("backbone.api")

UNAVAILABLE = "error.platform.serviceUnavailable"
# A store that is down or too slow to answer: the request may be repeated once it is back.
STORE_FAILURES = (
    NoHostAvailable,  # no Cassandra node reachable
    OperationTimedOut,  # the driver gave up waiting for the node
    RequestExecutionException,  # the node answered: unavailable, timed out, failed
    ConnectionException,
    KafkaError,
)

# What a 503 tells the client about its write, in the error body's `writeOutcome`:
# "notApplied": nothing was written, repeat it freely; "unknown": the command may still be
# applied, so repeat it with the same Idempotency-Key (or read before repeating).
WriteOutcome = Literal["notApplied", "unknown"]

# Whether the request being served has handed a command to the event log: a failure after
# that point leaves the write's outcome unknown. Each request runs in its own task, with
# its own copy of this variable.
_command_sent: ContextVar[bool] = ContextVar("command_sent", default=False)


def note_command_sent() -> None:
    _command_sent.set(True)


def write_outcome() -> WriteOutcome:
    return "unknown" if _command_sent.get() else "notApplied"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def unavailable(
    message: str, retry_after_s: int = 2, outcome: WriteOutcome | None = None
) -> ApiError:
    return ApiError(
        503,
        UNAVAILABLE,
        message,
        {"Retry-After": str(retry_after_s)},
        {"writeOutcome": outcome or write_outcome()},
    )


def response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, extra), status_code=status, headers=headers)


def store_unavailable(exc: Exception) -> ApiError:
    outcome = write_outcome()
    # The type only: a driver's message can carry statement text and addresses.
    log.warning("a store is unavailable", extra={"error": type(exc).__name__, "write": outcome})
    text = "a store of the backbone is not reachable; try again shortly"
    if outcome == "unknown":
        text += " (the write may still be applied: repeat it with the same Idempotency-Key)"
    return unavailable(text, outcome=outcome)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return response(exc.status, exc.code, exc.message, exc.headers, exc.extra)

    async def _store_failed(_: Request, exc: Exception) -> JSONResponse:
        failure = store_unavailable(exc)
        return response(
            failure.status, failure.code, failure.message, failure.headers, failure.extra
        )

    for failure in STORE_FAILURES:
        app.add_exception_handler(failure, _store_failed)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods, in the same error shape as everything else.
        return response(
            exc.status_code,
            http_error_code(exc.status_code),
            str(exc.detail),
            dict(exc.headers or {}),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return response(400, "error.platform.validation.invalidPropertyValue", message)
