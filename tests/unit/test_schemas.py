"""The Avro contract: single-object encoding, schema evolution, compatibility checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas import codec
from schemas.compat import backward_compatible, check_registry
from schemas.registry import SCHEMA_DIR, Registry, fingerprint, registry

FIXTURES = Path(__file__).parent / "schema_fixtures"


def _envelope() -> dict[str, object]:
    return {
        "event_id": "e1",
        "type": "IdentityCreated",
        "aggregate_key": "k",
        "aggregate_version": 3,
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        "causation_id": None,
        "correlation_id": "c1",
        "data_key_id": "d1",
        "body": b"\x00\x01sealed",
    }


def test_envelope_round_trip_with_single_object_header() -> None:
    data = codec.encode("Envelope", _envelope())
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == fingerprint(registry().current("Envelope"))
    name, record = codec.decode(data)
    assert name == "Envelope"
    assert record == _envelope()


def test_fingerprint_matches_the_avro_specification() -> None:
    # Avro's Java SchemaNormalization gives 0x7275d51a3f395c8f for "int"; stored little-endian.
    assert fingerprint("int") == (0x7275D51A3F395C8F).to_bytes(8, "little")


def test_old_records_decode_with_the_current_schema() -> None:
    reg = Registry.load(FIXTURES)
    old = parse_schema(json.loads((FIXTURES / "history" / "Thing.v1.avsc").read_text()))
    out = BytesIO()
    out.write(b"\xc3\x01" + fingerprint(old))
    schemaless_writer(out, old, {"id": "a", "count": 7})
    assert codec.decode(out.getvalue(), reg) == ("Thing", {"id": "a", "count": 7, "label": "none"})


def test_unknown_fingerprint_and_bad_magic_are_refused() -> None:
    data = codec.encode("Envelope", _envelope())
    with pytest.raises(codec.UnknownSchemaError):
        codec.decode(data[:2] + b"\xff" * 8 + data[10:])
    with pytest.raises(codec.SchemaError, match="magic"):
        codec.decode(b"\x00\x01" + data[2:])
    with pytest.raises(codec.SchemaError):
        codec.decode_as("Reply", data)


def test_record_that_does_not_fit_names_the_field() -> None:
    bad = _envelope() | {"aggregate_version": "three"}
    with pytest.raises(codec.SchemaError, match="aggregate_version"):
        codec.encode("Envelope", bad)
    missing = {k: v for k, v in _envelope().items() if k != "correlation_id"}
    with pytest.raises(codec.SchemaError, match="correlation_id"):
        codec.encode("Envelope", missing)


def _record(*fields: dict[str, object]) -> dict[str, object]:
    return {"type": "record", "name": "R", "fields": list(fields)}


def test_compat_flags_breaking_changes() -> None:
    old = _record({"name": "a", "type": "int"})
    assert backward_compatible(
        _record({"name": "a", "type": "int"}, {"name": "b", "type": "int"}), old
    )
    assert backward_compatible(_record({"name": "a", "type": "string"}), old)
    old_enum = {"type": "enum", "name": "E", "symbols": ["X", "Y"]}
    assert backward_compatible({"type": "enum", "name": "E", "symbols": ["X"]}, old_enum)


def test_compat_accepts_safe_changes() -> None:
    old = _record({"name": "a", "type": "int"})
    with_default = _record({"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": 0})
    assert backward_compatible(with_default, old) == []
    assert backward_compatible(_record({"name": "a", "type": "long"}), old) == []
    assert check_registry(Registry.load(FIXTURES)) == {}


def test_every_schema_in_the_repo_is_backward_compatible_with_its_history() -> None:
    assert check_registry(Registry.load(SCHEMA_DIR)) == {}


def test_every_schema_in_the_repo_parses_in_the_backbone_namespace() -> None:
    paths = sorted(SCHEMA_DIR.glob("*.avsc"))
    assert paths
    for path in paths:
        raw = json.loads(path.read_text())
        assert raw["namespace"] == "backbone", path
        parse_schema(raw)


def test_a_reply_written_before_the_api_chose_statuses_still_decodes() -> None:
    # Reply.status gained a default (workers write 0, the API no longer reads it): the
    # schema as it was, without that default, is the same writer schema (Avro's canonical
    # form drops defaults), so every reply already on the log decodes as it did.
    current = json.loads((SCHEMA_DIR / "Reply.avsc").read_text())
    before = dict(current)
    before["fields"] = [
        {k: v for k, v in f.items() if f["name"] != "status" or k in ("name", "type")}
        for f in current["fields"]
    ]
    assert "default" not in next(f for f in before["fields"] if f["name"] == "status")
    old = parse_schema(before)
    assert fingerprint(old) == fingerprint(registry().current("Reply"))
    out = BytesIO()
    out.write(b"\xc3\x01" + fingerprint(old))
    written = {
        "correlation_id": "c1",
        "ok": False,
        "status": 404,
        "error_code": "error.platform.recordNotFound",
        "error_message": "token not found",
        "resource_json": None,
    }
    schemaless_writer(out, old, written)
    assert codec.decode(out.getvalue()) == ("Reply", written)
