"""Avro single-object encoding: 0xC3 0x01, the writer schema's 8-byte fingerprint, the body.

Any consumer can decode any record it is handed: the fingerprint names the writer schema,
and the record is resolved to the current schema of the same name.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from schemas.registry import Registry, fingerprint, full_name, registry

MAGIC = b"\xc3\x01"
HEADER = len(MAGIC) + 8


class SchemaError(ValueError):
    """The data does not fit the schema, or is not single-object encoded."""


class UnknownSchemaError(SchemaError):
    """The record names a writer schema this registry does not know."""


_fingerprints: dict[str, bytes] = {}


def encode(name: str, record: dict[str, Any], reg: Registry | None = None) -> bytes:
    reg = reg or registry()
    schema = reg.current(name)
    try:
        validate(record, schema, raise_errors=True)
    except ValidationError as exc:
        raise SchemaError(f"{full_name(name)} does not fit its schema: {exc}") from None
    fp = _fingerprints.get(schema["name"])
    if fp is None:
        fp = _fingerprints[schema["name"]] = fingerprint(schema)
    out = BytesIO()
    out.write(MAGIC)
    out.write(fp)
    schemaless_writer(out, schema, record)
    return out.getvalue()


def decode(data: bytes, reg: Registry | None = None) -> tuple[str, dict[str, Any]]:
    """Returns (short record name, record as the current schema reads it)."""
    reg = reg or registry()
    if len(data) < HEADER or data[:2] != MAGIC:
        raise SchemaError("not Avro single-object encoded (bad magic or too short)")
    found = reg.writers.get(bytes(data[2:HEADER]))
    if found is None:
        raise UnknownSchemaError(f"unknown writer schema fingerprint {data[2:HEADER].hex()}")
    name, writer = found
    reader = reg.current(name)
    try:
        record = schemaless_reader(BytesIO(data[HEADER:]), writer, reader)
    except (EOFError, ValueError, IndexError) as exc:
        raise SchemaError(f"{name}: truncated or corrupt record ({exc})") from None
    if not isinstance(record, dict):
        raise SchemaError(f"{name}: not a record")
    return name.rsplit(".", 1)[-1], record


def decode_as(name: str, data: bytes, reg: Registry | None = None) -> dict[str, Any]:
    got, record = decode(data, reg)
    if full_name(got) != full_name(name):
        raise SchemaError(f"expected a {name} record, got {got}")
    return record
