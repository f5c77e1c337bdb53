"""The OpenAPI document stays the contract (issue 19): every operation of both API versions
names a typed success body and the errors it can answer, in the API's own shape. A route
added without its model, or a status rule dropped from api/openapi.py, fails here before it
reaches a client (the fuzz run, `make fuzz`, then checks the answers against the document)."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app

METHODS = ("get", "post", "put", "patch", "delete")
ERROR = "#/components/schemas/Error"
NO_BODY = ("204", "304")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app().openapi()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    component: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return component


def _typed(spec: dict[str, Any], media: str, schema: dict[str, Any]) -> bool:
    """A body with a shape: a model with named fields for JSON, a string type otherwise."""
    if media != "application/json":
        return schema.get("type") == "string"
    refs = [schema, *schema.get("anyOf", [])]
    return any("$ref" in r and _component(spec, r["$ref"]).get("properties") for r in refs)


def test_both_versions_are_documented_in_full(spec: dict[str, Any]) -> None:
    operations = _operations(spec)
    v1 = {(p.removeprefix("/api/v1"), m) for p, m, _ in operations if p.startswith("/api/v1/")}
    v2 = {(p.removeprefix("/api/v2"), m) for p, m, _ in operations if p.startswith("/api/v2/")}
    assert v1 == v2
    assert len(v2) > 50  # every resource, not an empty document that passes the rest


def test_every_operation_has_a_typed_success_body(spec: dict[str, Any]) -> None:
    untyped = []
    for path, method, op in _operations(spec):
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        if not successes:
            untyped.append((method, path, "no success status"))
        for status, response in successes.items():
            content = response.get("content", {})
            if status in NO_BODY:
                if content:
                    untyped.append((method, path, f"{status} with a body"))
                continue
            if not content:
                untyped.append((method, path, f"{status} without a body"))
            for media, body in content.items():
                if not _typed(spec, media, body.get("schema", {})):
                    untyped.append((method, path, f"{status} {media}: {body.get('schema')}"))
    assert not untyped, untyped


def test_answer_models_name_exactly_the_fields_sent(spec: dict[str, Any]) -> None:
    """The versioned answers' models forbid other fields, so the fuzz run's schema check
    catches a field the document lacks, not only one the answer lacks."""
    loose = []
    for path, method, op in _operations(spec):
        if not path.startswith("/api/"):
            continue
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if status.startswith("2") and "$ref" in schema:
                name = schema["$ref"].rsplit("/", 1)[1]
                # The routes that build their answer with `response_model` (FastAPI sends
                # exactly the model) may leave this open.
                if name.startswith(("Envelope_", "PagedEnvelope_", "MailboxPage")):
                    component = _component(spec, schema["$ref"])
                    if component.get("additionalProperties") is not False:
                        loose.append((method, path, name))
    assert not loose, loose


def test_every_operation_documents_its_errors_in_the_api_shape(spec: dict[str, Any]) -> None:
    missing: list[tuple[Any, ...]] = []
    for path, method, op in _operations(spec):
        responses = op["responses"]
        expected = {"400", "503"}  # any request: unparsable HTTP, connection cap, a store down
        if op.get("security") and {"bearer": []} in op["security"]:
            expected.add("401")
        if "{" in path:
            expected.add("404")
        if method in ("post", "put", "patch"):
            expected |= {"411", "413"}
        if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])):
            expected |= {"409", "422"}
        absent = expected - set(responses)
        if absent:
            missing.append((method, path, sorted(absent)))
        assert "422" not in responses or "409" in responses, (method, path)  # no FastAPI 422
        for status, response in responses.items():
            if status[0] not in "45":
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            refs = [schema.get("$ref"), *(r.get("$ref") for r in schema.get("anyOf", []))]
            if ERROR not in refs:
                missing.append((method, path, status, "not in the error shape"))
            if status in ("409", "429", "503"):
                assert "Retry-After" in response.get("headers", {}), (method, path, status)
    assert not missing, missing


def test_statuses_nothing_answers_are_not_promised(spec: dict[str, Any]) -> None:
    """Only password checks and streams have limits (429); only routes with a key can find it
    in use (409) or reused (422)."""
    for path, method, op in _operations(spec):
        responses = op["responses"]
        keyed = any(p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
        assert ("409" in responses) == keyed, (method, path)
        if "429" in responses:
            tail = path.removeprefix("/api/v1").removeprefix("/api/v2")
            limited = (
                "/Tokens/{token_id}",
                "/RelationshipTemplates/{template_id}",
                "/Mailbox",
                "/sse",
                "/connect/token",
            )
            assert tail in limited, (method, path)
    assert "HTTPValidationError" not in str(spec)
    assert "Result" not in spec["components"]["schemas"]


def test_auth_schemes_and_rules_the_schema_can_say(spec: dict[str, Any]) -> None:
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "devicePassword"}
    for path, method, op in _operations(spec):
        assert "security" in op, (method, path)
    paths = spec["paths"]
    assert paths["/connect/token"]["post"]["security"] == [{"devicePassword": []}]
    assert paths["/api/v2/Tokens/{token_id}"]["get"]["security"] == [{}, {"bearer": []}]
    schemas = spec["components"]["schemas"]
    # Byte fields are base64, in and out; sizes and ranges are bounded.
    token_in = schemas["CreateTokenRequest"]["properties"]
    assert token_in["content"]["pattern"] and token_in["content"]["maxLength"] == 48_000
    assert token_in["expiresAt"]["format"] == "date-time"
    message_out = schemas["MessageOut"]["properties"]
    assert message_out["body"]["pattern"] == token_in["content"]["pattern"]
    assert schemas["MessageRecipient"]["properties"]["encryptedKey"]["pattern"]
    assert schemas["RelationshipOut"]["properties"]["from"]["type"] == "string"
    assert schemas["CursorRequest"]["properties"]["index"]["maximum"] == 2**63 - 1
    upload = paths["/api/v2/Files"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert set(upload["responses"]["201"]["content"]) == {"application/json"}
    v2_file = paths["/api/v2/Files/{file_id}"]["get"]["responses"]["200"]["content"]
    v1_file = paths["/api/v1/Files/{file_id}"]["get"]["responses"]["200"]["content"]
    assert set(v2_file) == {"application/octet-stream"}
    assert v1_file["application/json"]["schema"]["$ref"].endswith("Envelope_FileMetadata_")
    started = paths["/api/v2/SyncRuns"]["post"]["responses"]
    assert {"200", "201"} <= set(started)
