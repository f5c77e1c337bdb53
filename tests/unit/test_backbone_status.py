"""`backbone status` and `backbone logs` (issue 20): one command for every part of the
local stack, and the log of each by name, without writing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from backbone.cli import main


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BACKBONE_KAFKA_BOOTSTRAP", "BACKBONE_CASSANDRA_CONTACT_POINTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BACKBONE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_status_lists_every_part_and_writes_nothing(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 3  # nothing runs
    out = capsys.readouterr().out
    for name in ("kafka", "cassandra", "worker", "api"):
        assert any(line.startswith(name) and "stopped" in line for line in out.splitlines()), out
    assert "backbone logs NAME" in out
    assert not (state / "secrets").exists()  # a status command makes no secrets


def test_logs_names_the_file_and_prints_its_tail(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (state / "api").mkdir(parents=True)
    (state / "api" / "api.log").write_text("".join(f"line {i}\n" for i in range(100)))
    assert main(["logs", "api", "-n", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["line 97", "line 98", "line 99"]
    assert str(state / "api" / "api.log") in captured.err
    assert main(["logs", "worker"]) == 0
    assert "(no log written)" in capsys.readouterr().out


def test_logs_of_the_auditor_that_backbone_up_starts(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (state / "auditor").mkdir(parents=True)
    (state / "auditor" / "auditor.log").write_text("checkpoint signed\n")
    assert main(["logs", "auditor", "-n", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["checkpoint signed"]
