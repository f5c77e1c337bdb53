"""Every Kafka and Cassandra client of the product is built from backbone/connections.py.

A client built from a bare bootstrap address works on the local plaintext launcher and
fails on a real cluster (SASL, TLS, passwords) in the one place nobody tried: this test
finds such a client in the source before a deployment does."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("api", "streams", "store", "backbone", "connector", "deploy", "bench")
# Constructor -> the helper whose arguments it must be given (as `**helper(...)`).
HELPERS = {
    "AIOKafkaProducer": "kafka_client_kwargs",
    "AIOKafkaConsumer": "kafka_client_kwargs",
    "AIOKafkaAdminClient": "kafka_client_kwargs",
    "Cluster": "cassandra_cluster_kwargs",
    "App": "faust_app_kwargs",  # faust.App
}


def _constructor(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name) and func.id in HELPERS and func.id != "App":
        return func.id
    if isinstance(func, ast.Attribute) and func.attr in HELPERS:
        if func.attr == "App" and not (
            isinstance(func.value, ast.Name) and func.value.id == "faust"
        ):
            return None
        return func.attr
    return None


def _spreads(call: ast.Call, helper: str) -> bool:
    for keyword in call.keywords:
        value = keyword.value
        if keyword.arg is None and isinstance(value, ast.Call):
            name = (
                value.func.id
                if isinstance(value.func, ast.Name)
                else getattr(value.func, "attr", "")
            )
            if name == helper:
                return True
    return False


def _bypasses() -> list[str]:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or (name := _constructor(node)) is None:
                    continue
                if not _spreads(node, HELPERS[name]):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.append(f"{where}: {name}(...) without **{HELPERS[name]}(...)")
    return found


def test_every_client_takes_its_arguments_from_backbone_connections() -> None:
    wrong = _bypasses()
    assert not wrong, "clients that would ignore credentials and TLS:\n" + "\n".join(wrong)


def test_the_check_sees_a_bypass(tmp_path: Path) -> None:
    bad = ast.parse("AIOKafkaConsumer(bootstrap_servers=b)\nfaust.App('x', broker=b)\n")
    good = ast.parse("AIOKafkaConsumer(**kafka_client_kwargs(b), group_id='g')\n")
    calls = [n for n in ast.walk(bad) if isinstance(n, ast.Call)]
    assert [_constructor(c) for c in calls] == ["AIOKafkaConsumer", "App"]
    assert not any(_spreads(c, HELPERS[str(_constructor(c))]) for c in calls)
    call = next(n for n in ast.walk(good) if isinstance(n, ast.Call) and _constructor(n))
    assert _spreads(call, "kafka_client_kwargs")
