"""The relationship state machine, every status, action and party, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.error_status import refusal_status
from domain import relationship_decider
from domain.decision import Rejection
from domain.relationship_decider import (
    ALREADY_DECOMPOSED,
    ALREADY_EXISTS,
    NO_REACTIVATION,
    NOT_YOURS_TO_DO,
    OPEN_REACTIVATION,
    WRONG_STATUS,
    PairState,
)
from tests.unit.wire_rules import Wire

NOW = datetime(2026, 11, 25, tzinfo=UTC)
P = Wire(relationship_decider)  # the rules in the log's form (tests/unit/wire_rules.py)
A, B, C = "did:e:x:dids:a", "did:e:x:dids:b", "did:e:x:dids:c"  # A requests, B owns the template


def _open(rid: str = "REL1") -> dict[str, Any]:
    return {
        "template_id": "RLT1",
        "relationship_id": rid,
        "from_address": A,
        "from_device": "DVCa",
        "to_address": B,
        "creation_content": b"c",
        "requested_at": NOW,
    }


def _apply(state: PairState, outcome: Any) -> PairState:
    assert not isinstance(outcome, Rejection), outcome
    for name, body in outcome:
        state = P.evolve(state, name, body)
    return state


def _act(state: PairState, action: str, actor: str, rid: str = "REL1") -> Any:
    cmd = {
        "relationship_id": rid,
        "action": action,
        "actor": actor,
        "actor_device": "DVC",
        "content": None,
        "requested_at": NOW,
    }
    return P.decide(state, "ChangeRelationship", cmd, NOW)


def _in(status_path: list[tuple[str, str]]) -> PairState:
    state = _apply(PairState(), P.decide(PairState(), "OpenRelationship", _open(), NOW))
    for action, actor in status_path:
        state = _apply(state, _act(state, action, actor))
    return state


PATHS: dict[str, list[tuple[str, str]]] = {
    "Pending": [],
    "Active": [("Accept", B)],
    "Rejected": [("Reject", B)],
    "Revoked": [("Revoke", A)],
    "Terminated": [("Accept", B), ("Terminate", A)],
    "Terminated+reactivation by A": [("Accept", B), ("Terminate", A), ("RequestReactivation", A)],
    "DeletionProposed by A": [("Accept", B), ("Terminate", B), ("Decompose", A)],
    "ReadyForDeletion": [("Accept", B), ("Terminate", B), ("Decompose", A), ("Decompose", B)],
}

# (start, action, actor) -> the status after, or the error code. This is the table in the
# issue note; anything not listed here is refused with WRONG_STATUS.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("Pending", "Accept", B): "Active",
    ("Pending", "Accept", A): NOT_YOURS_TO_DO,
    ("Pending", "Reject", B): "Rejected",
    ("Pending", "Reject", A): NOT_YOURS_TO_DO,
    ("Pending", "Revoke", A): "Revoked",
    ("Pending", "Revoke", B): NOT_YOURS_TO_DO,
    ("Active", "Terminate", A): "Terminated",
    ("Active", "Terminate", B): "Terminated",
    ("Terminated", "RequestReactivation", A): "Terminated",
    ("Terminated", "RequestReactivation", B): "Terminated",
    ("Terminated", "AcceptReactivation", A): NO_REACTIVATION,
    ("Terminated", "AcceptReactivation", B): NO_REACTIVATION,
    ("Terminated", "RejectReactivation", A): NO_REACTIVATION,
    ("Terminated", "RejectReactivation", B): NO_REACTIVATION,
    ("Terminated", "RevokeReactivation", A): NO_REACTIVATION,
    ("Terminated", "RevokeReactivation", B): NO_REACTIVATION,
    ("Terminated", "Decompose", A): "DeletionProposed",
    ("Terminated", "Decompose", B): "DeletionProposed",
    ("Terminated+reactivation by A", "RequestReactivation", A): OPEN_REACTIVATION,
    ("Terminated+reactivation by A", "RequestReactivation", B): OPEN_REACTIVATION,
    ("Terminated+reactivation by A", "AcceptReactivation", B): "Active",
    ("Terminated+reactivation by A", "AcceptReactivation", A): NOT_YOURS_TO_DO,
    ("Terminated+reactivation by A", "RejectReactivation", B): "Terminated",
    ("Terminated+reactivation by A", "RejectReactivation", A): NOT_YOURS_TO_DO,
    ("Terminated+reactivation by A", "RevokeReactivation", A): "Terminated",
    ("Terminated+reactivation by A", "RevokeReactivation", B): NO_REACTIVATION,
    ("Terminated+reactivation by A", "Decompose", A): "DeletionProposed",
    ("Terminated+reactivation by A", "Decompose", B): "DeletionProposed",
    ("Rejected", "Decompose", A): "DeletionProposed",
    ("Rejected", "Decompose", B): "DeletionProposed",
    ("Revoked", "Decompose", A): "DeletionProposed",
    ("Revoked", "Decompose", B): "DeletionProposed",
    ("DeletionProposed by A", "Decompose", A): ALREADY_DECOMPOSED,
    ("DeletionProposed by A", "Decompose", B): "ReadyForDeletion",
}

ACTIONS = [
    "Accept",
    "Reject",
    "Revoke",
    "Terminate",
    "RequestReactivation",
    "AcceptReactivation",
    "RejectReactivation",
    "RevokeReactivation",
    "Decompose",
]


@pytest.mark.parametrize("start", list(PATHS))
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("actor", [A, B])
def test_every_status_action_and_party(start: str, action: str, actor: str) -> None:
    state = _in(PATHS[start])
    expected = ALLOWED.get((start, action, actor), WRONG_STATUS)
    outcome = _act(state, action, actor)
    if isinstance(outcome, Rejection):
        assert outcome.code == expected, (start, action, actor)
        assert refusal_status(outcome.code) == 400
    else:
        assert outcome[0][1]["status"] == expected, (start, action, actor)


def test_a_third_identity_sees_nothing_to_act_on() -> None:
    state = _in(PATHS["Pending"])
    outcome = _act(state, "Accept", C)
    assert isinstance(outcome, Rejection) and refusal_status(outcome.code) == 404


def test_no_second_open_relationship_between_a_pair() -> None:
    state = _in(PATHS["Active"])
    again = P.decide(state, "OpenRelationship", _open("REL2"), NOW)
    assert isinstance(again, Rejection) and again.code == ALREADY_EXISTS
    # Once the old one is over (rejected, revoked or decomposed), a new request is fine.
    for over in ("Rejected", "Revoked", "ReadyForDeletion"):
        fresh = P.decide(_in(PATHS[over]), "OpenRelationship", _open("REL2"), NOW)
        assert not isinstance(fresh, Rejection), over


def test_the_same_request_redelivered_is_not_a_second_one() -> None:
    state = _in(PATHS["Pending"])
    assert P.decide(state, "OpenRelationship", _open(), NOW) == []


def test_state_survives_its_table_serialisation() -> None:
    state = _in(PATHS["DeletionProposed by A"])
    assert PairState.from_dict(state.to_dict()) == state


def test_evolve_leaves_the_state_it_was_given_as_it_was() -> None:
    before = _in(PATHS["Terminated"])
    after = _apply(before, _act(before, "Decompose", A))
    assert before.relationships["REL1"].status == "Terminated"
    assert before.relationships["REL1"].decomposed_by == ()
    assert after.relationships["REL1"].decomposed_by == (A,)
    assert after.version == before.version + 1
