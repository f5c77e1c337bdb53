"""Identity deletion's rules (issue 22), without Kafka: the decider's steps, the grace
period's limits, the peers' mailbox entries and the workers' key cache."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.enmeshed_events import enmeshed_event
from api.error_status import refusal_status
from backbone.deletion_policy import (
    DeletionSettings,
    anonymous_address,
    grace_period_s,
    mailbox_entries,
    sha256_hex,
)
from backbone.security.logcrypto import MasterKey
from domain import identity_decider as rules
from domain.decision import Rejection
from domain.deletion_forget import forget, forgotten
from domain.identity_decider import IdentityState
from streams.data_keys import RECHECK_S, DataKeys
from streams.deletion_erase import DeletedNamed, addresses_in
from tests.unit.wire_rules import Wire

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
ID = Wire(rules)  # the rules in the log's form (tests/unit/wire_rules.py)
ADDRESS = "did:e:localhost:dids:0123456789abcdef0123ab"
PEERS = [{"address": "did:e:localhost:dids:peer", "relationship_id": "RELAAAAAAAAAAAAAAAAA"}]


def _identity() -> IdentityState:
    return IdentityState(ADDRESS, "", 2, {"DVC1": "USR1", "DVC2": "USR2"})


def _start(pid: str = "IDP1", device: str = "DVC1", grace_s: int = 60) -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "identity_key": "k",
        "deletion_process_id": pid,
        "device_id": device,
        "grace_period_s": grace_s,
        "peers": PEERS,
        "requested_at": T0,
    }


def _cancel(pid: str = "IDP1", device: str = "DVC2") -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "deletion_process_id": pid,
        "device_id": device,
        "peers": PEERS,
        "requested_at": T0,
    }


def _apply(state: IdentityState, outcome: Any) -> IdentityState:
    assert not isinstance(outcome, Rejection), outcome
    for name, body in outcome:
        state = ID.evolve(state, name, body)
    return state


def _pending() -> IdentityState:
    return _apply(_identity(), ID.decide(_identity(), "StartIdentityDeletion", _start(), T0))


def test_start_puts_the_identity_in_its_grace_period() -> None:
    outcome = ID.decide(_identity(), "StartIdentityDeletion", _start(), T0)
    assert not isinstance(outcome, Rejection)
    [(name, body)] = outcome
    assert name == "IdentityDeletionStarted"
    assert body["grace_period_ends_at"] == T0 + timedelta(seconds=60)
    assert body["peers"] == PEERS
    state = _apply(_identity(), outcome)
    assert state.status == "ToBeDeleted" and state.deletion is not None


@pytest.mark.parametrize(
    ("state", "command", "status", "code"),
    [
        (IdentityState(), _start(), 404, "error.platform.recordNotFound"),
        (_identity(), _start(device="DVC9"), 403, "error.platform.forbidden"),
        (_identity(), _start(grace_s=0), 400, rules.INVALID_GRACE),
        (_pending(), _start(pid="IDP2"), 400, rules.ONLY_ONE_DELETION),
    ],
    ids=["no identity", "deleted device", "no grace", "one at a time"],
)
def test_start_is_refused(
    state: IdentityState, command: dict[str, Any], status: int, code: str
) -> None:
    outcome = ID.decide(state, "StartIdentityDeletion", command, T0)
    assert isinstance(outcome, Rejection) and (refusal_status(outcome.code), outcome.code) == (
        status,
        code,
    )


def test_cancel_in_the_grace_period_makes_the_identity_active_again() -> None:
    outcome = ID.decide(_pending(), "CancelIdentityDeletion", _cancel(), T0 + timedelta(seconds=59))
    state = _apply(_pending(), outcome)
    assert state.status == "Active" and state.deletion is None
    # and it may start again
    assert not isinstance(ID.decide(state, "StartIdentityDeletion", _start("IDP2"), T0), Rejection)


@pytest.mark.parametrize(
    ("command", "at", "code"),
    [
        (_cancel(pid="IDP9"), T0, rules.NOT_CANCELLABLE),
        (_cancel(), T0 + timedelta(seconds=60), rules.NOT_CANCELLABLE),
        (_cancel(device="DVC9"), T0, "error.platform.forbidden"),
    ],
    ids=["another process", "grace period over", "deleted device"],
)
def test_cancel_is_refused(command: dict[str, Any], at: datetime, code: str) -> None:
    outcome = ID.decide(_pending(), "CancelIdentityDeletion", command, at)
    assert isinstance(outcome, Rejection) and outcome.code == code


def test_the_final_step_is_due_only_after_the_grace_period_of_the_open_process() -> None:
    pending = _pending()
    assert not rules.finish_due(pending, "IDP1", T0 + timedelta(seconds=59))
    assert rules.finish_due(pending, "IDP1", T0 + timedelta(seconds=60))
    assert not rules.finish_due(pending, "IDP0", T0 + timedelta(days=1))  # a stale command
    assert not rules.finish_due(_identity(), "IDP1", T0 + timedelta(days=1))  # cancelled


def test_once_deleting_no_command_is_taken_and_a_successor_finishes() -> None:
    state = rules.deleting(_pending())
    assert state.status == "Deleting"
    # a worker taking over after a crash: due whatever the clock says
    assert rules.finish_due(state, "IDP1", T0)
    refused = ID.decide(state, "CancelIdentityDeletion", _cancel(), T0)
    assert isinstance(refused, Rejection) and refused.code == rules.IDENTITY_DELETING
    restored = IdentityState.from_dict(state.to_dict())
    assert restored.status == "Deleting" and restored.deletion == state.deletion


def test_what_stays_of_an_erased_identity_names_nobody() -> None:
    erased = rules.erased(rules.deleting(_pending()))
    kept = erased.to_dict()
    assert ADDRESS not in repr(kept) and "USR1" not in repr(kept)
    restored = IdentityState.from_dict(kept)
    assert restored.deleted and not rules.finish_due(restored, "IDP1", T0 + timedelta(days=1))
    device = {
        "challenge_expires_at": T0 + timedelta(1),
        "challenge_id": "CHL",
        "address": ADDRESS,
        "device_id": "DVC3",
        "username": "USR3",
        "password_hash": "h",
        "requested_at": T0,
    }
    create = {**device, "public_key": b"k" * 32, "client_id": "c", "identity_version": 1}
    again = ID.decide(restored, "CreateIdentity", create, T0)
    assert isinstance(again, Rejection)
    assert again.code == "error.platform.validation.identity.addressWasDeleted"
    other = ID.decide(restored, "AddDevice", {**device, "created_by_device": "DVC1"}, T0)
    assert isinstance(other, Rejection) and refusal_status(other.code) == 404


@pytest.mark.parametrize(
    ("days", "expected"),
    [(None, 14 * 86_400), (1, 86_400), (90, 90 * 86_400), (0, None), (91, None), (-3, None)],
)
def test_grace_period_limits(days: int | None, expected: int | None) -> None:
    assert grace_period_s(days, DeletionSettings()) == expected


def test_peers_are_told_in_upstreams_shapes_without_the_address() -> None:
    started = {"peers": PEERS, "grace_period_ends_at": T0, "address": ADDRESS}
    [(peer, kind, payload)] = mailbox_entries("IdentityDeletionStarted", started)
    assert (peer, kind) == (PEERS[0]["address"], "PeerToBeDeleted")
    assert payload == {
        "relationshipId": PEERS[0]["relationship_id"],
        "deletionDate": T0.isoformat(),
    }
    [(_, kind, payload)] = mailbox_entries("IdentityDeletionCancelled", started)
    assert kind == "PeerDeletionCancelled"
    assert payload == {"relationshipId": PEERS[0]["relationship_id"]}
    deleted = {"address": "p", "relationship_id": "R", "deleted_at": T0}
    [(_, kind, payload)] = mailbox_entries("PeerDeleted", deleted)
    assert kind == "PeerDeleted"
    assert enmeshed_event("PeerDeleted", payload, "p") == ("PeerDeleted", payload)
    assert mailbox_entries("MessageSent", {}) == []


def test_anonymous_address_keeps_the_domain() -> None:
    assert anonymous_address(ADDRESS) == "did:e:localhost:dids:anonymous"


class _Table(dict[str, Any]):
    pass


async def _no_session() -> Any:
    raise AssertionError("not used")


def test_a_worker_forgets_keys_shredded_elsewhere() -> None:
    master = MasterKey.generate()
    table = _Table()
    keys = DataKeys(master, table, _no_session)
    table["dk-a"] = base64.b64encode(master.wrap(b"a" * 32, "dk-a")).decode()
    assert keys.get("dk-a") == b"a" * 32
    assert keys.forget_shredded() == 0
    del table["dk-a"]  # the changelog's tombstone, applied by this worker's global table
    assert keys.forget_shredded() == 1
    with pytest.raises(KeyError):
        keys.get("dk-a")
    # a key read from Cassandra is kept RECHECK_S, then read again
    keys._plain["dk-b"] = b"b" * 32
    keys._loaded_at["dk-b"] = 100.0
    assert keys.forget_shredded(now=100.0 + RECHECK_S / 2) == 0
    assert keys.forget_shredded(now=100.0 + RECHECK_S + 1) == 1


def test_a_replay_follows_the_deleted_identities_its_records_name_and_their_peers() -> None:
    peer = "did:e:localhost:dids:ffffffffffffffffffffff"
    other = "did:e:localhost:dids:eeeeeeeeeeeeeeeeeeeeee"
    named = DeletedNamed({sha256_hex(ADDRESS)})
    message = {
        "sender": peer,
        "body": ADDRESS.encode(),
        "recipients": [{"address": other, "encrypted_key": b"k"}],
    }
    named.note(message)
    assert named.peers == {}  # bytes are not looked into, and the others are not deleted
    entry = {"recipient": peer, "payload_json": json.dumps({"createdBy": ADDRESS})}
    named.note(entry)
    named.note({"template_id": "T", "owner": other, "requester": ADDRESS})
    assert named.peers == {ADDRESS: {peer, other}}
    assert addresses_in({"address": "did:e:localhost:dids:anonymous"}) == set()


def test_a_deciders_state_forgets_a_deleted_identity() -> None:
    anon, peer = anonymous_address(ADDRESS), "did:e:localhost:dids:fedcba9876543210fedcba"
    h = sha256_hex(ADDRESS)
    # Its own token, template or file: dropped whole.
    assert forgotten({"version": 2, "owner": ADDRESS, "deleted": False}, h, anon) is None
    # A peer's template it allocated on, a relationship, a message: its address replaced
    # wherever it is (a value, a list item, a map key); the peer's own stays.
    template = {
        "owner": peer,
        "allocations": {ADDRESS: "REL1", "did:e:x:dids:other": "REL2"},
        "collectors": [ADDRESS],
        "for_identity": ADDRESS,
    }
    assert forgotten(template, h, anon) == {
        "owner": peer,
        "allocations": {anon: "REL1", "did:e:x:dids:other": "REL2"},
        "collectors": [anon],
        "for_identity": anon,
    }
    pair = {"relationships": {"REL1": {"from_address": peer, "to_address": ADDRESS}}}
    assert forgotten(pair, h, anon) == {
        "relationships": {"REL1": {"from_address": peer, "to_address": anon}}
    }
    # Applied to a table: a tombstone for what it owned, a rewrite for the rest, and a
    # second run changes nothing.
    table: dict[str, Any] = {"t": {"owner": ADDRESS}, "p": pair, "o": {"owner": peer}}
    body = {"address_hash": h, "anonymous": anon}
    for key in ("t", "p", "o", "missing"):
        forget(table, key, body)
        forget(table, key, body)
    assert table == {"p": forgotten(pair, h, anon), "o": {"owner": peer}}
