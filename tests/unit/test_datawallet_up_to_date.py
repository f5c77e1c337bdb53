"""A device adds datawallet modifications only on top of the newest it knows, and not while
a sync run is open (issue 18): it encrypts each payload under a key derived from the index
it expects, so a modification stored under another index could never be decrypted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain import sync_decider as s
from domain.decision import Rejection
from tests.unit.wire_rules import Wire, wire_rule

NOW = datetime(2026, 11, 30, tzinfo=UTC)
# The rules in the log's form (tests/unit/wire_rules.py).
S = Wire(s)
decide_start = wire_rule(s.decide_start, "StartSyncRun")
decide_modifications = wire_rule(s.decide_modifications, "AddDatawalletModifications")
MOD = {
    "id": "DWM1",
    "object_identifier": "o",
    "payload_category": None,
    "collection": "c",
    "type": "Create",
    "encrypted_payload": b"p",
}


def _add(local_index: int | None) -> dict[str, Any]:
    return {
        "address": "a",
        "device_id": "DVC1",
        "supported_datawallet_version": 1,
        "local_index": local_index,
        "modifications": [MOD, MOD],
        "requested_at": NOW,
    }


def _apply(sync: dict[str, Any], outcome: Any) -> dict[str, Any]:
    assert not isinstance(outcome, Rejection), outcome
    for name, body in outcome:
        sync = S.evolve(sync, name, body)
    return sync


def test_a_push_on_top_of_the_newest_modification_is_taken() -> None:
    sync = _apply(s.empty(), decide_modifications(s.empty(), _add(0), NOW))
    sync = _apply(sync, decide_modifications(sync, _add(2), NOW))
    assert sync["datawallet_index"] == 4


def test_a_push_from_a_device_that_missed_modifications_is_refused() -> None:
    sync = _apply(s.empty(), decide_modifications(s.empty(), _add(0), NOW))
    for stale in (0, 1, 3):
        refused = decide_modifications(sync, _add(stale), NOW)
        assert isinstance(refused, Rejection) and refused.code == s.NOT_UP_TO_DATE
    # Commands written before the field existed carry none: not checked.
    assert not isinstance(decide_modifications(sync, _add(None), NOW), Rejection)


def test_no_push_while_a_sync_run_is_open() -> None:
    start = {
        "address": "a",
        "device_id": "DVC2",
        "sync_run_id": "SYN1",
        "run_type": "ExternalEventSync",
        "head_index": 1,
        "lock_seconds": 60,
        "supported_datawallet_version": 1,
        "requested_at": NOW,
    }
    sync = _apply(s.empty(), decide_start(s.empty(), start, NOW))
    refused = decide_modifications(sync, _add(0), NOW)
    assert isinstance(refused, Rejection) and refused.code == s.DURING_RUN
    later = NOW + timedelta(minutes=11)  # the run's lock has run out
    assert not isinstance(decide_modifications(sync, _add(0), later), Rejection)
