"""Every command and event schema has its type, and a record survives dict -> type -> dict.

The types are written from the schemas (schemas/typegen.py); these tests keep the two in
step and the conversion (schemas/typed.py) lossless, with optional fields both set and
unset, so that what a decider returns is exactly what the log would have held.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from schemas import codec, typegen
from schemas.commands import RequestRelationship
from schemas.registry import SCHEMA_DIR
from schemas.typed import TYPES, as_type, command_from_avro, event_from_avro, from_avro, to_avro

SCHEMAS = {
    s["name"]: s
    for s in (json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.avsc")))
    if typegen.kind(s) is not None
}
_n = count()


def example(schema: Any, optional_set: bool) -> Any:
    """A value that fits `schema`, distinct per call; optional fields set or not."""
    if isinstance(schema, list):
        others = [s for s in schema if s != "null"]
        return example(others[0], optional_set) if optional_set else None
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            return datetime(2026, 11, 30, 12, 0, next(_n) % 60, 123000, tzinfo=UTC)
        if schema["type"] == "array":
            return [example(schema["items"], optional_set) for _ in range(2)]
        if schema["type"] == "record":
            return {f["name"]: example(f["type"], optional_set) for f in schema["fields"]}
        schema = schema["type"]
    n = next(_n)
    return {
        "string": f"s{n}",
        "bytes": bytes([n % 256, 1]),
        "long": n,
        "int": n,
        "boolean": n % 2 == 0,
    }[schema]


def test_the_generated_types_are_what_the_schemas_say() -> None:
    for stem, text in typegen.render().items():
        written = (Path(typegen.__file__).parent / f"{stem}.py").read_text()
        assert written == typegen.formatted(text), f"run python -m schemas.typegen ({stem})"


def test_every_command_and_event_schema_has_its_type() -> None:
    assert len(SCHEMAS) > 40
    assert set(TYPES) == set(SCHEMAS)
    assert {n for n, s in SCHEMAS.items() if s["doc"].startswith("Command")} >= {
        "SendMessage",
        "CreateIdentity",
        "ChangeRelationship",
    }


@pytest.mark.parametrize("optional_set", [True, False])
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_a_record_survives_the_round_trip_through_its_type(name: str, optional_set: bool) -> None:
    body = example(SCHEMAS[name], optional_set)
    _, decoded = codec.decode(codec.encode(name, body))  # as a worker reads it off the log

    typed = from_avro(name, decoded)

    assert type(typed).__name__ == name
    assert to_avro(typed) == (name, decoded)
    assert codec.decode(codec.encode(*to_avro(typed))) == (name, decoded)


def test_a_typed_record_cannot_be_changed() -> None:
    name = "DeleteToken"
    typed = from_avro(name, example(SCHEMAS[name], True))
    with pytest.raises(AttributeError):
        typed.token_id = "other"  # type: ignore[misc,union-attr]


def test_a_command_is_not_taken_for_an_event_nor_the_other_way() -> None:
    body = example(SCHEMAS["DeleteToken"], True)
    assert type(command_from_avro("DeleteToken", body)).__name__ == "DeleteToken"
    with pytest.raises(KeyError):
        event_from_avro("DeleteToken", body)
    with pytest.raises(KeyError):
        command_from_avro("TokenDeleted", body)


def test_a_record_of_a_known_type_is_built_as_that_type() -> None:
    body = example(SCHEMAS["RequestRelationship"], True)
    request = as_type(RequestRelationship, body)
    assert isinstance(request, RequestRelationship)
    assert to_avro(request) == ("RequestRelationship", body)
