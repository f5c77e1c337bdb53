"""Property-based fuzzing of the whole OpenAPI document with schemathesis (issue 19): every
operation, all checks, once without a token and once with one, against the real stack.
Zero server errors and zero schema violations is the bar.

Not part of `make test` (minutes, not seconds): `make fuzz` runs it. `FUZZ_EXAMPLES` sets
the examples per operation (default 25), `FUZZ_OUTPUT_DIR` where schemathesis's whole
outputs are kept (failures with their `curl` reproduction). The streams (`/sse`) never end
by design and are left out; the mailbox's long poll is bounded by its `wait` (at most 60 s).
The successes the generated requests rarely reach are checked by the walk in
tests/integration/test_openapi_responses.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from connector.backbone_client import BackboneClient
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("BACKBONE_FUZZ") != "1", reason="make fuzz runs it"),
]


def _fuzz(stack: Stack, report: Path, *headers: str) -> tuple[int, str]:
    argv = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{stack.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        os.environ.get("FUZZ_EXAMPLES", "25"),
        "--exclude-path-regex",
        "/sse$",
        "--request-timeout",
        "75",
        "--workers",
        "2",
        "--seed",
        "19",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    for header in headers:
        argv += ["--header", header]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    return done.returncode, done.stdout + done.stderr


def _keep(runs: dict[str, tuple[int, str]], where: Path) -> Path:
    """The whole outputs, failures and their reproduction included, outlive the run."""
    where.mkdir(parents=True, exist_ok=True)
    for name, (_, output) in runs.items():
        (where / f"{name}.txt").write_text(output)
    return where


@pytest.mark.timeout(3600)  # the suite's 300 s is for ordinary tests
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    stack: Stack, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        party = await BackboneClient(http, CLIENT_ID, CLIENT_SECRET).create_identity_and_log_in(
            "a long enough password"
        )
    runs = {
        "anonymous": _fuzz(stack, tmp_path / "anonymous.ndjson"),
        "authenticated": _fuzz(
            stack, tmp_path / "authenticated.ndjson", f"Authorization: Bearer {party.token}"
        ),
    }
    kept = _keep(runs, Path(os.environ.get("FUZZ_OUTPUT_DIR", tmp_path)))
    for name, (code, output) in runs.items():
        summary = [
            line for line in output.splitlines() if re.search(r"generated|passed|failed", line)
        ]
        print(f"--- schemathesis, {name}: exit {code}\n" + "\n".join(summary[-6:]))
        if code != 0:
            print(output[output.find("FAILURES") :] if "FAILURES" in output else output[-20000:])
    failed = sorted(name for name, (code, _) in runs.items() if code != 0)
    assert not failed, f"schemathesis failed: {failed}; outputs in {kept}"
