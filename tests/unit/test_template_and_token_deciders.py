"""Template allocations and token ownership, without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.error_status import refusal_status
from domain import file_decider as f
from domain import template_decider as t
from domain import token_decider as k
from domain.decision import Rejection
from tests.unit.wire_rules import Wire

NOW = datetime(2026, 11, 25, tzinfo=UTC)
OWNER = "did:e:x:dids:owner"
# The rules in the log's form (tests/unit/wire_rules.py).
K = Wire(k)
T = Wire(t)
F = Wire(f)


def _template(**extra: Any) -> t.TemplateState:
    cmd = {
        "template_id": "RLT1",
        "owner": OWNER,
        "owner_device": "DVC1",
        "content": b"c",
        "expires_at": None,
        "max_allocations": None,
        "for_identity": None,
        "password_hash": None,
        "requested_at": NOW,
        **extra,
    }
    state: t.TemplateState = _apply(
        t.TemplateState(), T.decide(t.TemplateState(), "CreateTemplate", cmd, NOW)
    )
    return state


def _apply(state: Any, outcome: Any) -> Any:
    assert not isinstance(outcome, Rejection), outcome
    for name, body in outcome:
        state = (T.evolve if name.startswith("Template") else K.evolve)(state, name, body)
    return state


def _request(requester: str, rid: str = "REL") -> dict[str, Any]:
    return {
        "template_id": "RLT1",
        "relationship_id": rid,
        "requester": requester,
        "requester_device": "DVC",
        "creation_content": b"x",
        "requested_at": NOW,
    }


def test_exactly_max_allocations_are_granted() -> None:
    state = _template(max_allocations=3)
    granted = 0
    for i in range(10):
        outcome = T.decide(state, "RequestRelationship", _request(f"peer{i}", f"REL{i}"), NOW)
        if isinstance(outcome, Rejection):
            assert outcome.code == t.EXHAUSTED
        else:
            state = _apply(state, outcome)
            granted += 1
    assert granted == 3 and len(state.allocations) == 3


def test_a_peer_counts_once_and_a_released_allocation_is_free_again() -> None:
    state = _template(max_allocations=1)
    state = _apply(state, T.decide(state, "RequestRelationship", _request("p", "REL1"), NOW))
    assert T.decide(state, "RequestRelationship", _request("p", "REL2"), NOW) == []
    release = {**_request("p", "REL1"), "requested_at": NOW}
    state = _apply(state, T.decide(state, "ReleaseAllocation", release, NOW))
    assert state.allocations == {}
    assert T.decide(state, "ReleaseAllocation", release, NOW) == []  # again: nothing to do


def test_expired_own_foreign_and_deleted_templates_refuse_requests() -> None:
    expired = _template(expires_at=NOW - timedelta(seconds=1))
    rej = T.decide(expired, "RequestRelationship", _request("p"), NOW)
    assert isinstance(rej, Rejection) and rej.code == t.EXPIRED
    rej = T.decide(_template(), "RequestRelationship", _request(OWNER), NOW)
    assert isinstance(rej, Rejection) and rej.code == t.TO_YOURSELF
    rej = T.decide(_template(for_identity="someone"), "RequestRelationship", _request("p"), NOW)
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 404
    state = _template()
    rej = T.decide(
        state, "DeleteTemplate", {"template_id": "RLT1", "actor": "p", "requested_at": NOW}, NOW
    )
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 404
    delete = {"template_id": "RLT1", "actor": OWNER, "requested_at": NOW}
    state = _apply(state, T.decide(state, "DeleteTemplate", delete, NOW))
    rej = T.decide(state, "RequestRelationship", _request("p"), NOW)
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 404


def test_only_the_owner_deletes_a_token() -> None:
    create = {
        "token_id": "TOK1",
        "owner": OWNER,
        "owner_device": "DVC1",
        "content": b"c",
        "expires_at": NOW,
        "for_identity": None,
        "password_hash": None,
        "requested_at": NOW,
    }
    state = _apply(k.TokenState(), K.decide(k.TokenState(), "CreateToken", create, NOW))
    rej = K.decide(
        state, "DeleteToken", {"token_id": "TOK1", "actor": "p", "requested_at": NOW}, NOW
    )
    assert isinstance(rej, Rejection) and refusal_status(rej.code) == 404
    delete = {"token_id": "TOK1", "actor": OWNER, "requested_at": NOW}
    state = _apply(state, K.decide(state, "DeleteToken", delete, NOW))
    assert state.deleted
    assert isinstance(K.decide(state, "DeleteToken", delete, NOW), Rejection)


def test_a_file_is_uploaded_once_and_keeps_its_owner() -> None:
    now = datetime.now(UTC)
    upload = {
        "file_id": "FILaaaaaaaaaaaaaaaaa",
        "owner": "did:e:x:dids:alice",
        "owner_device": "DVC1",
        "cipher_size": 10,
        "cipher_hash": b"h",
        "content_sha256": b"s",
        "chunk_count": 1,
        "expires_at": now + timedelta(days=1),
        "encrypted_properties": b"",
        "requested_at": now,
    }
    state = f.FileState()
    events = F.decide(state, "UploadFile", upload, now)
    assert not isinstance(events, Rejection)
    [(name, body)] = events
    assert name == "FileUploaded" and body["created_at"] == now
    assert body["content_sha256"] == b"s" and body["owner"] == "did:e:x:dids:alice"
    state = F.evolve(state, name, body)
    again = F.decide(state, "UploadFile", {**upload, "owner": "did:e:x:dids:mallory"}, now)
    assert isinstance(again, Rejection) and again.code == f.ALREADY_EXISTS
    assert state.owner == "did:e:x:dids:alice"


def test_evolve_leaves_the_state_it_was_given_as_it_was() -> None:
    before = _template(max_allocations=2)
    after = _apply(before, T.decide(before, "RequestRelationship", _request("p", "REL1"), NOW))
    assert before.allocations == {} and before.version == 1
    assert after.allocations == {"p": "REL1"} and after.version == 2
    assert t.TemplateState.from_dict(after.to_dict()) == after  # as the table keeps it
