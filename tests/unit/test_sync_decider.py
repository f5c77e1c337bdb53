"""Sync runs and the datawallet as rules of the identity aggregate, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.error_status import refusal_status
from domain import sync_decider as s
from domain.decision import Rejection
from tests.unit.wire_rules import Wire, wire_rule

NOW = datetime(2026, 11, 25, tzinfo=UTC)
# The rules in the log's form (tests/unit/wire_rules.py).
S = Wire(s)
decide_start = wire_rule(s.decide_start, "StartSyncRun")
decide_finalize = wire_rule(s.decide_finalize, "FinalizeSyncRun")
decide_modifications = wire_rule(s.decide_modifications, "AddDatawalletModifications")


def _apply(sync: dict[str, Any], outcome: Any) -> dict[str, Any]:
    assert not isinstance(outcome, Rejection), outcome
    for name, body in outcome:
        sync = S.evolve(sync, name, body)
    return sync


def _start(head: int, run: str = "SYN1", device: str = "DVC1", version: int = 0) -> dict[str, Any]:
    return {
        "address": "a",
        "device_id": device,
        "sync_run_id": run,
        "run_type": "ExternalEventSync",
        "head_index": head,
        "lock_seconds": 60,
        "supported_datawallet_version": version,
        "requested_at": NOW,
    }


def _finish(
    run: str, results: list[tuple[int, str | None]], device: str = "DVC1"
) -> dict[str, Any]:
    return {
        "address": "a",
        "device_id": device,
        "sync_run_id": run,
        "results": [{"index": i, "error_code": e} for i, e in results],
        "new_datawallet_version": None,
        "modifications": [],
        "requested_at": NOW,
    }


def test_a_run_takes_the_new_events_and_finalizing_moves_the_index() -> None:
    sync = s.empty()
    assert decide_start(sync, _start(head=0), NOW) == []  # NoNewEvents
    outcome = decide_start(sync, _start(head=3), NOW)
    assert not isinstance(outcome, Rejection)
    started = outcome[-1][1]
    assert (started["from_index"], started["to_index"]) == (0, 3)
    sync = _apply(sync, outcome)
    rej = decide_start(sync, _start(head=5, run="SYN2"), NOW)
    assert isinstance(rej, Rejection) and rej.code == s.RUNNING
    rej = decide_finalize(sync, _finish("SYN1", [], device="DVC2"), NOW)
    assert isinstance(rej, Rejection) and rej.code == s.OTHER_DEVICE
    rej = decide_finalize(sync, _finish("SYN1", [(7, None)]), NOW)
    assert isinstance(rej, Rejection) and rej.code == s.UNKNOWN_EVENT
    sync = _apply(sync, decide_finalize(sync, _finish("SYN1", [(1, None), (2, None)]), NOW))
    assert sync["synced_index"] == 3 and sync["running"] is None
    rej = decide_finalize(sync, _finish("SYN1", []), NOW)
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 404


def test_failed_events_come_back_until_they_failed_three_times() -> None:
    sync = _apply(s.empty(), decide_start(s.empty(), _start(head=2), NOW))
    sync = _apply(sync, decide_finalize(sync, _finish("SYN1", [(2, "bad")]), NOW))
    for attempt in range(2, s.MAX_SYNC_ERRORS + 1):
        outcome = decide_start(sync, _start(head=2, run=f"SYN{attempt}"), NOW)
        assert not isinstance(outcome, Rejection)
        assert outcome[-1][1]["retry_indexes"] == [2]
        sync = _apply(sync, outcome)
        sync = _apply(sync, decide_finalize(sync, _finish(f"SYN{attempt}", [(2, "bad")]), NOW))
    assert sync["errors"] == {"2": s.MAX_SYNC_ERRORS}
    assert decide_start(sync, _start(head=2, run="SYNX"), NOW) == []  # given up on


def test_an_abandoned_run_expires_and_is_replaced() -> None:
    sync = _apply(s.empty(), decide_start(s.empty(), _start(head=2), NOW))
    later = NOW + timedelta(minutes=2)
    rej = decide_finalize(sync, _finish("SYN1", []), later)
    assert isinstance(rej, Rejection) and rej.code == s.NOT_RUNNING
    outcome = decide_start(sync, _start(head=2, run="SYN2"), later)
    assert not isinstance(outcome, Rejection)
    assert [name for name, _ in outcome] == ["SyncRunExpired", "SyncRunStarted"]
    assert outcome[1][1]["from_index"] == 0  # the abandoned run's events come again


def test_datawallet_modifications_are_numbered_and_versions_enforced() -> None:
    mod = {
        "id": "DWM1",
        "object_identifier": "o",
        "payload_category": None,
        "collection": "c",
        "type": "Create",
        "encrypted_payload": b"p",
    }
    add = {
        "address": "a",
        "device_id": "DVC1",
        "supported_datawallet_version": 1,
        "modifications": [mod, {**mod, "id": "DWM2"}],
        "requested_at": NOW,
    }
    sync = _apply(s.empty(), decide_modifications(s.empty(), add, NOW))
    sync = _apply(sync, decide_modifications(sync, add, NOW))
    assert sync["datawallet_index"] == 4
    sync["datawallet_version"] = 2
    rej = decide_modifications(sync, add, NOW)
    assert isinstance(rej, Rejection) and rej.code == s.OLD_VERSION
