"""Imports point one way.

The Connector, run on-site by organizations, takes from this repository only the contract
(`schemas`) and the local process helpers (`localproc`), and those two import neither the
server nor the Connector. On the server, the pure rules (`domain`) import no part of it
that does I/O, the persistence layer (`store`) is shared by the API and the workers and
imports neither, and the API never imports the workers (`streams`). The read side's queries
(`store/readmodels`) import only the persistence layer and the rules, and the API reads
Cassandra through them, not with CQL of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = {"api", "streams", "deploy", "backbone", "bench", "tests"}
FORBIDDEN = {
    "connector": SERVER,
    "schemas": SERVER | {"connector"},
    "localproc": SERVER | {"connector"},
    "store": {"api", "streams", "deploy", "bench", "tests", "connector"},
    "domain": {"api", "streams", "store", "deploy", "bench", "tests", "connector"},
    "api": {"streams", "connector", "deploy", "bench", "tests"},
}


def _imported_modules(path: Path) -> set[tuple[str, int]]:
    """(dotted module, line) of every absolute import in the file, also inside functions."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, node.lineno))
    return found


def _imported_roots(path: Path) -> set[tuple[str, int]]:
    """(top-level package, line) of every absolute import in the file, also inside functions."""
    return {(module.split(".")[0], line) for module, line in _imported_modules(path)}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_neither_the_server_nor_tooling(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found under {package}/"
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {root}"
        for path in files
        for root, line in sorted(_imported_roots(path))
        if root in FORBIDDEN[package]
    ]
    assert not wrong, "\n".join(wrong)


FIRST_PARTY = {*FORBIDDEN, "backbone", "deploy", "bench", "tests"}
# What the read models' queries may import of this repository.
READMODELS_IMPORT = {"store", "domain"}
# API modules that still run CQL of their own: the data keys the API unwraps to seal the
# events it appends (api/sender_keys.py; the workers read the same table).
CQL_IN_API = {"api/sender_keys.py"}


def test_read_model_queries_import_only_the_persistence_layer_and_the_rules() -> None:
    files = sorted((ROOT / "store" / "readmodels").rglob("*.py"))
    assert files
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for module, line in sorted(_imported_modules(path))
        if module.split(".")[0] in FIRST_PARTY - READMODELS_IMPORT
    ]
    assert not wrong, "\n".join(wrong)


def _runs_statements(path: Path) -> list[int]:
    """Lines importing what runs a CQL statement (connecting, as the app does, is not)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom)
        and node.module == "store.cassandra"
        and {alias.name for alias in node.names} & {"run_prepared", "execute"}
    ]


def test_the_api_reads_cassandra_through_the_read_models_only() -> None:
    wrong = [
        f"{relative}:{line} runs CQL: add a query to store/readmodels/ instead"
        for path in sorted((ROOT / "api").rglob("*.py"))
        if (relative := str(path.relative_to(ROOT))) not in CQL_IN_API
        for line in _runs_statements(path)
    ]
    assert not wrong, "\n".join(wrong)
