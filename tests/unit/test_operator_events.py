"""`backbone events` shows metadata only: for every record type in the contract, a body
with every field filled never shows a field that carries ciphertext, a key or a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from backbone.events import metadata
from schemas.registry import registry

MARK = "SECRET-MARK"


def _sample(schema: Any) -> Any:
    """A value for an Avro type, every string and byte field carrying MARK."""
    if isinstance(schema, list):  # a union: its first non-null branch
        return _sample(next(s for s in schema if s != "null"))
    if isinstance(schema, dict):
        kind = schema.get("type")
        if schema.get("logicalType", "").startswith("timestamp"):
            return datetime(2026, 1, 1, tzinfo=UTC)
        if kind == "record":
            return {f["name"]: _sample(f["type"]) for f in schema["fields"]}
        if kind == "array":
            return [_sample(schema["items"])]
        if kind == "map":
            return {"k": _sample(schema["values"])}
        if kind == "enum":
            return schema["symbols"][0]
        return _sample(kind)
    return {
        "string": "meta",
        "bytes": MARK.encode(),
        "long": 7,
        "int": 7,
        "boolean": True,
        "double": 1.0,
        "float": 1.0,
        "null": None,
    }.get(schema, "meta")


def _names() -> list[str]:
    return [n for n in registry().names() if not n.endswith("Envelope")]


# String fields that carry content or secrets (bytes fields are all of that kind).
SECRET_STRINGS = {
    "content",
    "creation_content",
    "password_hash",
    "encrypted_properties",
    "resource_json",
    "error_message",
}


@pytest.mark.parametrize("name", _names())
def test_no_field_with_content_or_secrets_is_shown(name: str) -> None:
    schema = registry().current(name)
    body = _sample(schema)
    for field in schema["fields"]:
        if field["name"] in SECRET_STRINGS and isinstance(body[field["name"]], str):
            body[field["name"]] = MARK
    if "payload_json" in body:  # a mailbox entry: ids ride along with inline ciphertext
        body["payload_json"] = json.dumps({"messageId": "MSG1", "body": MARK, "encryptedKey": MARK})
    shown, withheld = metadata(name, body)
    assert MARK not in json.dumps(shown, default=str), f"{name}: {shown}"
    for field in schema["fields"]:
        key = field["name"]
        carries = "bytes" in json.dumps(field["type"]) or key in SECRET_STRINGS
        if carries and key != "recipients":
            assert key not in shown, f"{name}.{key} must be withheld"
            assert key in withheld, f"{name}.{key}: its size is shown instead"
    if "payload_json" in body:
        assert shown["payload"] == {"messageId": "MSG1"}
