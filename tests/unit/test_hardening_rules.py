"""The pure rules behind issue 19's fixes: the challenge gate, template collection, the
datawallet's version, the failure windows and the stream slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.error_status import refusal_status
from api.errors import ApiError
from api.ratelimit import Rule, SlidingWindows
from api.stream_slots import StreamSlots
from domain import challenge_decider, sync_decider, template_decider
from domain.decision import Rejection
from schemas.commands import AddDevice, CollectTemplate, RequestRelationship
from schemas.events import TemplateAllocated, TemplateCollected, TemplateCreated
from tests.unit.wire_rules import wire_rule

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# The rules in the log's form (tests/unit/wire_rules.py).
decide_finalize = wire_rule(sync_decider.decide_finalize, "FinalizeSyncRun")


def test_the_challenge_gate_lets_one_request_through() -> None:
    cmd = AddDevice(
        challenge_id="CHL1",
        challenge_expires_at=NOW + timedelta(minutes=5),
        address="did:e:x:dids:a",
        device_id="DVC2",
        username="USR2",
        password_hash="h",
        created_by_device="DVC1",
        requested_at=NOW,
    )
    used = challenge_decider.decide(None, "corr-1", cmd, NOW)
    assert isinstance(used, dict)
    assert challenge_decider.decide(used, "corr-1", cmd, NOW) == used  # its own redelivery
    again = challenge_decider.decide(used, "corr-2", cmd, NOW)
    assert isinstance(again, Rejection) and again.code == challenge_decider.CHALLENGE_USED
    late = challenge_decider.decide(None, "corr-3", cmd, NOW + timedelta(minutes=6))
    assert isinstance(late, Rejection) and late.code == challenge_decider.CHALLENGE_EXPIRED


def _template(password: bool) -> template_decider.TemplateState:
    created = TemplateCreated(
        template_id="RLT1",
        owner="owner",
        owner_device="DVC",
        content=b"",
        password_hash="hash" if password else None,
        created_at=NOW,
    )
    return template_decider.evolve(template_decider.TemplateState(), created)


def test_a_protected_template_admits_only_peers_that_collected_it() -> None:
    request = RequestRelationship(
        template_id="RLT1",
        requester="peer",
        requester_device="DVCp",
        relationship_id="REL1",
        creation_content=b"",
        requested_at=NOW,
    )
    state = _template(password=True)
    refused = template_decider.decide(state, request, NOW)
    assert isinstance(refused, Rejection) and refusal_status(refused.code) == 404
    collect = CollectTemplate(template_id="RLT1", collector="peer", requested_at=NOW)
    events = template_decider.decide(state, collect, NOW)
    assert isinstance(events, list) and isinstance(events[0], TemplateCollected)
    state = template_decider.evolve(state, events[0])
    assert template_decider.decide(state, collect, NOW) == []
    allocated = template_decider.decide(state, request, NOW)
    assert isinstance(allocated, list) and isinstance(allocated[0], TemplateAllocated)
    open_state = _template(password=False)
    assert template_decider.decide(open_state, collect, NOW) == []
    assert isinstance(template_decider.decide(open_state, request, NOW), list)


def test_the_datawallet_version_never_goes_down() -> None:
    sync = {
        **sync_decider.empty(),
        "datawallet_version": 3,
        "running": {
            "id": "SYN1",
            "device_id": "DVC",
            "to_index": 0,
            "retry_indexes": [],
            "expires_at": (NOW + timedelta(minutes=5)).timestamp(),
        },
    }
    finalize = {
        "sync_run_id": "SYN1",
        "device_id": "DVC",
        "address": "a",
        "results": [],
        "modifications": [],
        "requested_at": NOW,
    }
    down = decide_finalize(sync, {**finalize, "new_datawallet_version": 2}, NOW)
    assert isinstance(down, Rejection) and down.code == sync_decider.DOWNGRADE
    same = decide_finalize(sync, {**finalize, "new_datawallet_version": 3}, NOW)
    assert isinstance(same, list)


def test_failure_windows_slide() -> None:
    rule = Rule("r", 2, 10.0)
    windows = SlidingWindows()
    assert windows.wait("k", rule, 0.0) == 0
    windows.add("k", 0.0, 10.0)
    windows.add("k", 1.0, 10.0)
    assert windows.wait("k", rule, 2.0) == pytest.approx(8.0)  # until the first leaves
    assert windows.wait("other", rule, 2.0) == 0
    assert windows.wait("k", rule, 10.5) == 0
    windows.clear("k")
    assert windows.wait("k", rule, 2.0) == 0


def test_stream_slots_are_per_identity_and_given_back_once() -> None:
    slots = StreamSlots(per_identity=2)
    first, _second = slots.slot("a"), slots.slot("a")
    with pytest.raises(ApiError) as full:
        slots.take("a")
    assert full.value.status == 429 and full.value.headers["Retry-After"]
    slots.take("b")  # another identity is not affected
    first.release()
    first.release()  # harmless
    slots.take("a")
    with pytest.raises(ApiError):
        slots.take("a")
