"""The OpenAPI document as the contract: what each route answers, errors and auth included.

FastAPI's own document said every error is a 422 `HTTPValidationError`, while the API
answers 400 and every other error in the Enmeshed envelope (api/errors.py); it named no
security scheme and no 401/403/404/411/413/429/503 (issue 19). The document is FastAPI's,
rewritten here once per process:

- FastAPI's 422 is removed; the statuses a route can answer are added with their shape:
  the `{"error": …}` envelope everywhere, OAuth's `{"error", "error_description"}` on
  `/connect/token`. Most are read off the route itself (`_statuses`: its token, its
  Idempotency-Key, its body, its path parameters, its password checks); the refusals only
  a decider knows of are declared by the route (`documented(..., refuses=...)`);
- routes that take a bearer token say so (`bearer`, a required or an optional one), and
  the token endpoint documents the OAuth2 password grant with its client credentials;
- every success has its typed body (api/schemas.py; tests/unit/test_openapi_contract.py
  fails for one without), the streams are `text/event-stream`, file content is bytes,
  `/metrics` Prometheus text, and `POST /Files` gets its multipart request body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from api.deps import get_caller, get_client_address, get_optional_caller
from api.idempotency import HEADER, MAX_KEY_LENGTH, read_idempotency_key
from api.schemas import ERROR_DESCRIPTIONS

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "Every error of the API (api/errors.py), in the Enmeshed Backbone's shape.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["id", "code", "message", "docs", "time"],
            "properties": {
                "id": {"type": "string"},
                "code": {"type": "string", "examples": ["error.platform.recordNotFound"]},
                "message": {"type": "string"},
                "docs": {"type": "string"},
                "time": {"type": "string", "format": "date-time"},
                "writeOutcome": {"type": "string", "enum": ["notApplied", "unknown"]},
            },
        }
    },
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "OAuthError",
    "description": "The token endpoint's errors keep OAuth's shape (RFC 6749, section 5.2).",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_STREAMS = {"/Mailbox", "/sse"}
# Read by api/idempotency.py from the request itself, so FastAPI does not list it.
_IDEMPOTENCY_KEY = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "Repeats of a request with this key are applied once and answered alike "
    "(per caller and endpoint, for a day).",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": "^[\\x20-\\x7e]+$",
    },
}
# Cassandra bigints: FastAPI's document keeps bounds as floats, and 2**63 - 1 is a float
# 2**63, one more than any index the API takes.
_BIGINT_MAX = 2**63 - 1


def flat_routes(app: FastAPI) -> list[Any]:
    """Every API route with its full path, dependencies included: FastAPI 0.165 keeps an
    included router as one route and resolves its members (the contexts) lazily."""
    return [
        context
        for context in routing.iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods every route of `path` takes, for a 405's `Allow`."""
    routes = [r for r in flat_routes(app) if r.include_in_schema]
    # A path that is a route of its own (`/Devices/Self`) answers for its methods only, even
    # where a parametrized path (`/Devices/{device_id}`) would match it too.
    exact = [r for r in routes if r.path_format == path]
    matching = exact or [r for r in routes if compile_path(r.path_format)[0].match(path)]
    return sorted({method for r in matching for method in (r.methods or ())})


def _needs(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)


def _error_response(status: str, schema: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status in ("409", "429", "503"):
        response["headers"] = _RETRY_AFTER
    if status == "400":
        # A request line or header too large or malformed for HTTP is refused by the server
        # (uvicorn's h11: "Invalid HTTP request received.") before the API sees it.
        response["content"]["text/plain"] = {"schema": {"type": "string"}}
    return response


def build(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    schemas["OAuthError"] = OAUTH_ERROR_SCHEMA
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A device's access token from `POST /connect/token` (15 minutes).",
        },
        "devicePassword": {
            "type": "oauth2",
            "description": "The OAuth2 password grant: a device's username and password, with "
            "the OAuth client's id and secret in the form.",
            "flows": {"password": {"tokenUrl": "/connect/token", "scopes": {}}},
        },
    }
    for route in flat_routes(app):
        if not route.include_in_schema:
            continue
        item = spec["paths"].get(route.path_format, {})
        for method in route.methods:
            operation = item.get(method.lower())
            if operation is not None:
                _rewrite(route, method, operation)
    _exact_bounds(spec)
    return spec


def _exact_bounds(node: Any) -> None:
    """Integer bounds back to integers (the largest: a bigint's); see _BIGINT_MAX."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("maximum", "minimum") and isinstance(value, float) and value.is_integer():
                node[key] = min(int(value), _BIGINT_MAX)
            else:
                _exact_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _exact_bounds(value)


def _statuses(route: Any, method: str) -> set[str]:
    """The error statuses `route` can answer, from what it takes."""
    path = route.path_format
    tail = path.removeprefix("/api/v1").removeprefix("/api/v2")
    # Any request: a request line or header HTTP cannot parse (400, from the server), the
    # connection cap or a store that is down (503).
    statuses = {"400", "503"}
    if _needs(route.dependant, get_caller) or _needs(route.dependant, get_optional_caller):
        statuses.add("401")
    if path == "/connect/token" or (tail == "/Identities" and method == "POST"):
        statuses.add("401")  # wrong OAuth client credentials
    if path == "/connect/token":
        statuses.add("429")  # failed logins
    if "{" in path or tail.endswith("/Self"):
        statuses.add("404")  # the resource named, or the caller's own identity or device
    if method in ("POST", "PUT", "PATCH"):
        statuses |= {"411", "413"}
    if _needs(route.dependant, read_idempotency_key):
        # The same key while its first request is running (409), or with another body (422).
        statuses |= {"409", "422"}
    if _needs(route.dependant, get_client_address) or (method == "GET" and tail in _STREAMS):
        statuses.add("429")  # failed password checks, or open streams
    return statuses


def _rewrite(route: Any, method: str, op: dict[str, Any]) -> None:
    path = route.path_format
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)
    token_endpoint = path == "/connect/token"
    required = _needs(route.dependant, get_caller)
    optional = _needs(route.dependant, get_optional_caller) or path.endswith("/Challenges")
    if required:
        op["security"] = [{"bearer": []}]
    elif optional:
        op["security"] = [{}, {"bearer": []}]  # anonymous, or with a token
    elif token_endpoint:
        op["security"] = [{"devicePassword": []}]
    else:
        op["security"] = []
    schema: dict[str, Any] = ERROR_REF
    if token_endpoint:
        # OAuth's shape for what the endpoint decides; a malformed form is refused before
        # it runs, in the API's own envelope.
        schema = {"anyOf": [{"$ref": "#/components/schemas/OAuthError"}, ERROR_REF]}
    if _needs(route.dependant, read_idempotency_key):
        op.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)
    declared = {s for s in responses if s[0] in "45"}  # the route's own `refuses`
    if optional:
        declared.add("401")
    for status in sorted(_statuses(route, method) | declared):
        own = responses.get(status, {}).get("content", {}).get("application/json", {})
        ref = own.get("schema", {}).get("$ref")
        # A route's own model for an error status (`/ready`'s 503) or the error envelope.
        responses[status] = _error_response(
            status, {"anyOf": [{"$ref": ref}, schema]} if ref else schema
        )
    _document_success(path, method, op)


def _document_success(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op["responses"]
    tail = path.removeprefix("/api/v1").removeprefix("/api/v2")
    for status, response in responses.items():
        if not status.startswith(("2", "3")):
            continue
        content = response.setdefault("content", {})
        json_body = content.get("application/json")
        if json_body is not None and "$ref" in json_body.get("schema", {}):
            # A documented model (api/schemas.py) replaces FastAPI's "any object".
            json_body["schema"] = {"$ref": json_body["schema"]["$ref"]}
        if tail in _STREAMS:
            content["text/event-stream"] = {"schema": {"type": "string"}}
            if tail == "/sse":
                content.pop("application/json", None)
        if path == "/metrics":
            response["content"] = {"text/plain": {"schema": {"type": "string"}}}
            continue
        if tail.endswith("/Content") or (path == "/api/v2/Files/{file_id}" and method == "GET"):
            content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
            content.pop("application/json", None)
            continue
        if not content or status in ("204", "304"):  # no body
            response.pop("content", None)


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
