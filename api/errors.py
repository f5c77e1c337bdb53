"""Errors in the Enmeshed Backbone's shape: {"error": {"id", "code", "message", "docs", "time"}}."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def unavailable(message: str, retry_after_s: int = 2) -> ApiError:
    return ApiError(
        503, "error.platform.serviceUnavailable", message, {"Retry-After": str(retry_after_s)}
    )


def error_body(code: str, message: str) -> dict[str, object]:
    return {
        "error": {
            "id": str(uuid.uuid4()),
            "code": code,
            "message": message,
            "docs": "",
            "time": datetime.now(UTC).isoformat(),
        }
    }


def response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods, in the same error shape as everything else.
        code = {404: "error.platform.recordNotFound", 405: "error.platform.methodNotAllowed"}
        return response(
            exc.status_code,
            code.get(exc.status_code, "error.platform.http"),
            str(exc.detail),
            dict(exc.headers or {}),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return response(400, "error.platform.validation.invalidPropertyValue", message)
