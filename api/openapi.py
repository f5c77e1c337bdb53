"""The OpenAPI document as the contract: what each route answers, errors and auth included.

FastAPI's own document said every error is a 422 `HTTPValidationError`, while the API
answers 400 and every other error in the Enmeshed envelope (api/errors.py); it named no
security scheme and no 401/403/404/411/413/429/503 (issue 19). The document is FastAPI's,
rewritten here once per process:

- every 422 is removed; the statuses a route can answer are added with their shape: the
  `{"error": …}` envelope everywhere, OAuth's `{"error", "error_description"}` on
  `/connect/token`;
- routes that take a bearer token say so (`bearer`, a required or an optional one), and
  the token endpoint documents the OAuth2 password grant with its client credentials;
- success bodies without a model are documented as the `{"result": …}` envelope, the
  streams as `text/event-stream`, file content as bytes, `/metrics` as Prometheus text,
  and `POST /Files` gets its multipart request body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from api.deps import get_caller, get_optional_caller

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
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Result",
    "description": "A success in the Enmeshed envelope: the answer is `result`; lists "
    "carry `pagination` too.",
    "required": ["result"],
    "properties": {"result": {}},
}

_ERRORS = {
    "400": "Invalid request: a parameter, header or body field (`error.code` says which rule)",
    "401": "No valid bearer token, or its device was deleted",
    "403": "Not allowed: a password is needed or wrong, or the resource is another's",
    "404": "No such resource, or not visible to the caller",
    "405": "Method not allowed on this path (`Allow` lists the allowed ones)",
    "411": "A body without Content-Length",
    "413": "The body is larger than this route takes",
    "422": "An Idempotency-Key used before with another body",
    "429": "Too many failed password checks, or open streams; see `Retry-After`",
    "503": "A store is unavailable or pushes back; see `Retry-After` and `writeOutcome`",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_STREAMS = {"/Mailbox", "/sse"}


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
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if status in ("429", "503"):
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
    schemas["Result"] = ENVELOPE_SCHEMA
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
    return spec


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
    versioned = path.startswith("/api/")
    statuses = ["503"]
    if versioned or token_endpoint:
        statuses += ["400", "429"]
    if required or optional:
        statuses += ["401", "403", "404"]
    if path.endswith("}") or "{" in path:
        statuses += ["404"]
    if method in ("POST", "PUT", "PATCH"):
        statuses += ["411", "413", "422"]
    if token_endpoint or (path.endswith("/Identities") and method == "POST"):
        statuses += ["401"]  # wrong OAuth client credentials
    schema: dict[str, Any] = ERROR_REF
    if token_endpoint:
        # OAuth's shape for what the endpoint decides; a malformed form is refused before
        # it runs, in the API's own envelope.
        schema = {"anyOf": [{"$ref": "#/components/schemas/OAuthError"}, ERROR_REF]}
    for status in sorted(set(statuses)):
        responses.setdefault(status, _error_response(status, schema))
    _document_success(path, method, op)


def _document_success(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op["responses"]
    tail = path.removeprefix("/api/v1").removeprefix("/api/v2")
    for status, response in responses.items():
        if not status.startswith("2"):
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
        if versioned_without_model(path, json_body):
            assert json_body is not None
            json_body["schema"] = {"$ref": "#/components/schemas/Result"}
        if not content and status != "204" and path.startswith("/api/"):
            content["application/json"] = {"schema": {"$ref": "#/components/schemas/Result"}}
        if not content:  # 204: no body
            response.pop("content", None)


def versioned_without_model(path: str, json_body: dict[str, Any] | None) -> bool:
    """A JSON success of an /api route that FastAPI documented as anything (no model)."""
    if json_body is None or not path.startswith("/api/"):
        return False
    schema = json_body.get("schema", {})
    return "$ref" not in schema and schema.get("type") in (None, "object")


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
