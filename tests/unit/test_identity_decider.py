"""The identity aggregate's rules, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.error_status import refusal_status
from domain import identity_decider
from domain.decision import Rejection
from domain.identity_decider import (
    CHALLENGE_EXPIRED,
    CHALLENGE_USED,
    MAX_DEVICES,
    IdentityState,
)
from tests.unit.wire_rules import Wire

NOW = datetime(2026, 11, 24, tzinfo=UTC)
ID = Wire(identity_decider)  # the rules in the log's form (tests/unit/wire_rules.py)
EARLIER = NOW - timedelta(minutes=1)  # when the decider runs: the challenges are fresh


def _create(address: str = "did:e:x:dids:1") -> dict[str, Any]:
    return {
        "challenge_id": "CHL1",
        "challenge_expires_at": NOW,
        "address": address,
        "public_key": b"k" * 32,
        "client_id": "c",
        "identity_version": 1,
        "device_id": "DVC1",
        "username": "USR1",
        "password_hash": "h",
        "requested_at": NOW,
    }


def _apply(
    state: IdentityState, events: list[tuple[str, dict[str, Any]]] | Rejection
) -> IdentityState:
    assert not isinstance(events, Rejection), events
    for name, body in events:
        state = ID.evolve(state, name, body)
    return state


def _add(device: str, by: str = "DVC1") -> dict[str, Any]:
    return {
        "challenge_id": f"CHL{device}",
        "challenge_expires_at": NOW,
        "address": "did:e:x:dids:1",
        "device_id": device,
        "username": f"USR{device}",
        "password_hash": "h",
        "created_by_device": by,
        "requested_at": NOW,
    }


def test_create_emits_identity_and_first_device() -> None:
    events = ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    assert not isinstance(events, Rejection)
    assert [name for name, _ in events] == ["IdentityCreated", "DeviceRegistered"]
    state = _apply(IdentityState(), events)
    assert state.exists and state.version == 2 and state.devices == {"DVC1": "USR1"}


def test_duplicate_address_is_rejected() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    again = ID.decide(state, "CreateIdentity", {**_create(), "challenge_id": "CHLX"}, EARLIER)
    assert isinstance(again, Rejection)
    assert again.code == "error.platform.validation.identity.addressAlreadyExists"


def test_add_and_delete_devices() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    state = _apply(state, ID.decide(state, "AddDevice", _add("DVC2"), EARLIER))
    assert set(state.devices) == {"DVC1", "DVC2"}
    delete = {
        "address": "did:e:x:dids:1",
        "device_id": "DVC2",
        "deleted_by_device": "DVC1",
        "requested_at": NOW,
    }
    events = ID.decide(state, "DeleteDevice", delete, EARLIER)
    assert not isinstance(events, Rejection)
    assert events[0][1]["username"] == "USRDVC2"  # the projection needs it to revoke logins
    state = _apply(state, events)
    assert set(state.devices) == {"DVC1"}
    gone = ID.decide(state, "DeleteDevice", delete, EARLIER)
    assert isinstance(gone, Rejection) and refusal_status(gone.code) == 404


def test_device_cannot_delete_itself_and_deleted_device_cannot_add() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    own = {"address": "a", "device_id": "DVC1", "deleted_by_device": "DVC1", "requested_at": NOW}
    rej = ID.decide(state, "DeleteDevice", own, EARLIER)
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 400
    rej = ID.decide(state, "AddDevice", _add("DVC3", by="DVC9"), EARLIER)
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 403


def test_device_limit_is_enforced() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    for i in range(2, MAX_DEVICES + 1):
        state = _apply(state, ID.decide(state, "AddDevice", _add(f"DVC{i}"), EARLIER))
    assert len(state.devices) == MAX_DEVICES
    rej = ID.decide(state, "AddDevice", _add("DVCX"), EARLIER)
    assert isinstance(rej, Rejection) and rej.code == "error.platform.quotaExhausted.devices"


def test_state_survives_its_table_serialisation() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    state.data_key_id = "dk"
    assert IdentityState.from_dict(state.to_dict()) == state
    assert IdentityState.from_dict(None) == IdentityState()


def test_expired_challenge_is_rejected_even_when_it_was_fresh_at_the_api() -> None:
    rej = ID.decide(IdentityState(), "CreateIdentity", _create(), NOW)
    assert isinstance(rej, Rejection) and rej.code == CHALLENGE_EXPIRED


def test_a_challenge_registers_one_device_only() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    reuse_of_first = {**_add("DVC2"), "challenge_id": "CHL1"}
    rej = ID.decide(state, "AddDevice", reuse_of_first, EARLIER)
    assert isinstance(rej, Rejection) and rej.code == CHALLENGE_USED
    state = _apply(state, ID.decide(state, "AddDevice", _add("DVC2"), EARLIER))
    rej = ID.decide(state, "AddDevice", _add("DVC2"), EARLIER)
    assert isinstance(rej, Rejection) and rej.code == CHALLENGE_USED
    # Creating the same identity again with its used challenge says "used", not "exists".
    rej = ID.decide(state, "CreateIdentity", _create(), EARLIER)
    assert isinstance(rej, Rejection) and rej.code == CHALLENGE_USED


def test_used_challenges_are_forgotten_a_day_after_they_expired() -> None:
    state = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    later = NOW + timedelta(days=2)
    add = {**_add("DVC2"), "challenge_expires_at": later}
    state = _apply(state, ID.decide(state, "AddDevice", add, later - timedelta(minutes=1)))
    assert set(state.used_challenges) == {"CHLDVC2"}


def test_evolve_leaves_the_state_it_was_given_as_it_was() -> None:
    before = _apply(
        IdentityState(), ID.decide(IdentityState(), "CreateIdentity", _create(), EARLIER)
    )
    after = _apply(before, ID.decide(before, "AddDevice", _add("DVC2"), EARLIER))
    assert before.devices == {"DVC1": "USR1"} and "CHLDVC2" not in before.used_challenges
    assert after.devices == {"DVC1": "USR1", "DVC2": "USRDVC2"}
    assert after.version == before.version + 1
