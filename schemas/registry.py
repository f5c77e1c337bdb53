"""Every Avro schema of the backbone: current versions in avsc/, older ones in avsc/history/.

Older versions stay known so that a record written years ago still decodes: its
fingerprint finds the writer schema, and Avro resolution reads it as the current one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema
from fastavro.schema import fingerprint as _hex_fingerprint
from fastavro.schema import to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).parent / "avsc"
NAMESPACE = "backbone"
_HISTORY_NAME = re.compile(r"^(?P<name>\w+)\.v(?P<version>\d+)\.avsc$")


def fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO of the Parsing Canonical Form, little-endian, as single-object encoding
    carries it (fastavro's hex string already lists the bytes in that order)."""
    return bytes.fromhex(_hex_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def full_name(name: str) -> str:
    return name if "." in name else f"{NAMESPACE}.{name}"


def _parse(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], parse_schema(json.loads(path.read_text())))


@dataclass
class Registry:
    current_schemas: dict[str, Any] = field(default_factory=dict)
    history_schemas: dict[str, list[Any]] = field(default_factory=dict)
    writers: dict[bytes, tuple[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path = SCHEMA_DIR) -> Registry:
        reg = cls()
        for path in sorted(directory.glob("*.avsc")):
            parsed = _parse(path)
            reg.current_schemas[parsed["name"]] = parsed
            reg.writers[fingerprint(parsed)] = (parsed["name"], parsed)
        versions: dict[str, list[tuple[int, Any]]] = {}
        for path in sorted((directory / "history").glob("*.avsc")):
            match = _HISTORY_NAME.match(path.name)
            if match is None:
                raise ValueError(f"{path}: history files are named <Name>.v<N>.avsc")
            parsed = _parse(path)
            versions.setdefault(parsed["name"], []).append((int(match["version"]), parsed))
            reg.writers.setdefault(fingerprint(parsed), (parsed["name"], parsed))
        for name, found in versions.items():
            reg.history_schemas[name] = [schema for _, schema in sorted(found, key=lambda v: v[0])]
        return reg

    def current(self, name: str) -> Any:
        try:
            return self.current_schemas[full_name(name)]
        except KeyError:
            raise KeyError(f"no schema named {name}") from None

    def history(self, name: str) -> list[Any]:
        return list(self.history_schemas.get(full_name(name), []))

    def names(self) -> list[str]:
        return sorted(self.current_schemas)


@cache
def registry() -> Registry:
    return Registry.load()
