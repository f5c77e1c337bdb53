"""Imports point one way.

The Connector, run on-site by organizations, takes from this repository only the contract
(`schemas`) and the local process helpers (`localproc`), and those two import neither the
server nor the Connector. On the server, the pure rules (`domain`) import no part of it
that does I/O, the persistence layer (`store`) is shared by the API and the workers and
imports neither, and the API never imports the workers (`streams`)."""

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


def _imported_roots(path: Path) -> set[tuple[str, int]]:
    """(top-level package, line) of every absolute import in the file, also inside functions."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


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
