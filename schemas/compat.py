"""Backward compatibility: can a reader with the NEW schema read data written with the OLD?

The rules are Avro's schema resolution rules for the cases our schemas use: records,
primitives with their promotions, unions, enums, arrays and maps.
"""

from __future__ import annotations

from typing import Any

from schemas.registry import Registry

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def backward_compatible(new: Any, old: Any, path: str = "") -> list[str]:
    where = path or "schema"
    new_kind, old_kind = _kind(new), _kind(old)
    if old_kind == "union":
        problems: list[str] = []
        for branch in old:
            problems += backward_compatible(new, branch, path)
        return problems
    if new_kind == "union":
        if any(not backward_compatible(branch, old, path) for branch in new):
            return []
        return [f"{where}: no branch of the new union reads the old {old_kind}"]
    if new_kind != old_kind:
        if new_kind in _PROMOTIONS.get(old_kind, set()):
            return []
        return [f"{where}: type changed from {old_kind} to {new_kind}"]
    if new_kind == "record":
        return _records(new, old, where)
    if new_kind == "enum":
        missing = set(old["symbols"]) - set(new["symbols"])
        if missing and "default" not in new:
            return [f"{where}: enum symbols removed without a default: {sorted(missing)}"]
        return []
    if new_kind == "array":
        return backward_compatible(new["items"], old["items"], f"{where}[]")
    if new_kind == "map":
        return backward_compatible(new["values"], old["values"], f"{where}{{}}")
    return []


def _records(new: dict[str, Any], old: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    old_fields = {f["name"]: f for f in old["fields"]}
    for field in new["fields"]:
        name = field["name"]
        if name in old_fields:
            problems += backward_compatible(
                field["type"], old_fields[name]["type"], f"{where}.{name}"
            )
        elif "default" not in field:
            problems.append(f"{where}.{name}: added without a default")
    return problems


def check_registry(reg: Registry) -> dict[str, list[str]]:
    """Every current schema against each of its older versions; only names with problems."""
    found: dict[str, list[str]] = {}
    for name in reg.names():
        for version, old in enumerate(reg.history(name), start=1):
            problems = backward_compatible(reg.current(name), old, f"{name}(v{version})")
            if problems:
                found.setdefault(name, []).extend(problems)
    return found
