"""The two API versions: `/api/v2` (the Enmeshed Backbone's current consumer API, what
`@nmshd/transport` 7.x calls) and `/api/v1` (kept for older clients and, for now, for this
project's own Connector).

Every versioned router is one object declared without the version (`prefix="/Tokens"`) and
mounted under both prefixes by `mount`. The versions differ in one thing only: how byte
fields are written. v2 writes base64url without padding, as `@nmshd/crypto`'s
`CoreBuffer.fromBase64URL` reads them; v1 keeps standard base64 with padding, because the
Connector (connector/service.py) still decodes with `base64.b64decode`, which would silently
drop `-` and `_`. Both versions accept both forms on input (api/content.py).
"""

from __future__ import annotations

import base64
from contextvars import ContextVar

from fastapi import APIRouter, Depends, FastAPI, Request

V1, V2 = "/api/v1", "/api/v2"

# Set per request by the version's router dependency; read where bytes are encoded.
_urlsafe: ContextVar[bool] = ContextVar("backbone_api_urlsafe_bytes", default=True)


# The versioned route template (/api/v2/Tokens/{token_id}) for metrics and the request log
# (api/observe.py): FastAPI hands the router's own route, without the include's prefix.
ROUTE_KEY = "backbone.route"


def _label(request: Request, prefix: str) -> None:
    route = request.scope.get("route")
    if route is not None:
        request.scope[ROUTE_KEY] = prefix + str(getattr(route, "path", ""))


async def _v1(request: Request) -> None:  # async: runs in the request's own context
    _urlsafe.set(False)
    _label(request, V1)


async def _v2(request: Request) -> None:
    _urlsafe.set(True)
    _label(request, V2)


def encode_bytes(raw: bytes) -> str:
    """Bytes for the wire in the calling version's form."""
    if _urlsafe.get():
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


def is_v1() -> bool:
    """Whether the request came in under /api/v1 (for the few routes whose v1 shape differs)."""
    return not _urlsafe.get()


def mount(app: FastAPI, router: APIRouter) -> None:
    app.include_router(router, prefix=V1, dependencies=[Depends(_v1)])
    app.include_router(router, prefix=V2, dependencies=[Depends(_v2)])
