"""A device replaces its own password: the identity decider's rule (issue 18: the Enmeshed
client changes every onboarded device's password and keeps the new one whatever happens)."""

from __future__ import annotations

from datetime import UTC, datetime

from api.error_status import refusal_status
from domain import identity_decider
from domain.decision import Rejection
from domain.identity_decider import IdentityState
from tests.unit.wire_rules import Wire

NOW = datetime(2026, 11, 30, tzinfo=UTC)
ID = Wire(identity_decider)  # the rules in the log's form (tests/unit/wire_rules.py)


def _identity() -> IdentityState:
    create = {
        "challenge_id": "CHL1",
        "challenge_expires_at": NOW,
        "address": "did:e:x:dids:1",
        "public_key": b"k" * 32,
        "client_id": "c",
        "identity_version": 1,
        "device_id": "DVC1",
        "username": "USR1",
        "password_hash": "old",
        "requested_at": NOW,
    }
    events = ID.decide(IdentityState(), "CreateIdentity", create, NOW.replace(year=2025))
    assert not isinstance(events, Rejection)
    state = IdentityState()
    for name, body in events:
        state = ID.evolve(state, name, body)
    return state


def _change(device: str) -> dict[str, object]:
    return {
        "address": "did:e:x:dids:1",
        "device_id": device,
        "password_hash": "new",
        "requested_at": NOW,
    }


def test_a_device_changes_its_own_password() -> None:
    events = ID.decide(_identity(), "ChangeDevicePassword", _change("DVC1"), NOW)
    assert events == [
        (
            "DevicePasswordChanged",
            {
                "address": "did:e:x:dids:1",
                "device_id": "DVC1",
                "username": "USR1",
                "password_hash": "new",
                "changed_at": NOW,
            },
        )
    ]


def test_a_deleted_or_unknown_device_cannot() -> None:
    refused = ID.decide(_identity(), "ChangeDevicePassword", _change("DVC9"), NOW)
    assert isinstance(refused, Rejection) and refusal_status(refused.code) == 403
