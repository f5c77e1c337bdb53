"""`backbone replay verify`: the rebuilt keyspace against the live one, table by table.

For each table: the row count and a content digest on each side (SHA-256 over the sorted
SHA-256s of the rows, each row in a canonical form: columns by name, values normalised),
and, where they differ, the rows by primary key: missing from the rebuilt keyspace, extra
in it, or present in both with other content. Write times and TTLs are not compared (a
rebuilt row's TTL counts from the replay).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from cassandra.cluster import Session

from backbone.replay.rebuild import NOT_REBUILT

SHOWN_ROWS = 5


def _norm(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"hex": bytes(value).hex()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted((_norm(v) for v in value), key=json.dumps)
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return sorted(([_norm(k), _norm(v)] for k, v in value.items()), key=json.dumps)
    if hasattr(value, "_asdict"):
        return _norm(dict(value._asdict()))
    return value


@dataclass
class TableDigest:
    rows: int = 0
    digest: str = ""
    by_key: dict[str, str] = field(default_factory=dict)  # primary key -> row hash


def tables(session: Session, keyspace: str) -> list[str]:
    rows = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    return sorted(r.table_name for r in rows)


def primary_key(session: Session, keyspace: str, table: str) -> list[str]:
    rows = session.execute(
        "SELECT column_name, kind, position FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    order = {"partition_key": 0, "clustering": 1}
    keys = [(order[r.kind], r.position, r.column_name) for r in rows if r.kind in order]
    return [name for _, _, name in sorted(keys)]


def digest(session: Session, keyspace: str, table: str) -> TableDigest:
    key_columns = primary_key(session, keyspace, table)
    out = TableDigest()
    hashes = []
    for row in session.execute(f"SELECT * FROM {keyspace}.{table}"):  # noqa: S608 (names from the schema)
        values = row._asdict()
        canonical = json.dumps({k: _norm(v) for k, v in sorted(values.items())}, sort_keys=True)
        h = hashlib.sha256(canonical.encode()).hexdigest()
        key = json.dumps([_norm(values[c]) for c in key_columns])
        out.by_key[key] = h
        hashes.append(h)
    out.rows = len(hashes)
    out.digest = hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()
    return out


@dataclass
class TableComparison:
    table: str
    live_rows: int
    rebuilt_rows: int
    live_digest: str
    rebuilt_digest: str
    missing: list[str] = field(default_factory=list)  # primary keys
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.live_digest == self.rebuilt_digest and self.live_rows == self.rebuilt_rows

    def line(self) -> str:
        head = f"{self.table:<28}{self.live_rows:>10}{self.rebuilt_rows:>10}  "
        if self.identical:
            return head + f"identical  {self.live_digest[:16]}"
        parts = []
        for name, keys in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("changed", self.changed),
        ):
            if keys:
                shown = ", ".join(keys[:SHOWN_ROWS]) + (" …" if len(keys) > SHOWN_ROWS else "")
                parts.append(f"{len(keys)} {name}: {shown}")
        return head + "DIFFERENT  " + "; ".join(parts)


def compare(session: Session, live: str, rebuilt: str) -> list[TableComparison]:
    names = sorted((set(tables(session, live)) | set(tables(session, rebuilt))) - NOT_REBUILT)
    out = []
    for table in names:
        a = digest(session, live, table) if table in tables(session, live) else TableDigest()
        b = digest(session, rebuilt, table) if table in tables(session, rebuilt) else TableDigest()
        result = TableComparison(table, a.rows, b.rows, a.digest, b.digest)
        if not result.identical:
            result.missing = sorted(k for k in a.by_key if k not in b.by_key)
            result.extra = sorted(k for k in b.by_key if k not in a.by_key)
            result.changed = sorted(
                k for k in a.by_key if k in b.by_key and a.by_key[k] != b.by_key[k]
            )
        out.append(result)
    return out


def format_comparison(results: list[TableComparison], live: str, rebuilt: str) -> str:
    lines = [f"live: {live}   rebuilt: {rebuilt}", f"{'table':<28}{'live':>10}{'rebuilt':>10}"]
    lines += [r.line() for r in results]
    different = [r.table for r in results if not r.identical]
    lines.append(
        f"\n{len(results)} tables compared: "
        + ("every table identical" if not different else f"{len(different)} differ")
    )
    return "\n".join(lines)
