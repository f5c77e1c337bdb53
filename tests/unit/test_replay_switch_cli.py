"""`backbone replay switch` takes either the keyspace to go to or `--back`: anything else is
one line and exit 2, before it touches Cassandra."""

from __future__ import annotations

import base64

import pytest

from backbone.cli import main


@pytest.mark.parametrize("argv", [[], ["--keyspace", "backbone_rebuilt", "--back"]])
def test_switch_wants_a_keyspace_or_back(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKBONE_MASTER_KEY", base64.b64encode(bytes(32)).decode())
    monkeypatch.setenv("BACKBONE_CASSANDRA_CONTACT_POINTS", "127.0.0.1")
    monkeypatch.setenv("BACKBONE_CASSANDRA_PORT", "1")  # nothing answers there
    assert main(["replay", "switch", *argv]) == 2
    err = capsys.readouterr().err
    assert err == "error: switch takes --keyspace NEW (rebuilt by `backbone replay`) or --back\n"
