"""The rules of relationships between two identities, as a state machine.

One aggregate per *pair* of identities (their addresses, sorted): its decider is the single
writer for everything between the two, which is what makes "no second open relationship
between the same pair" hold without a race. Pure functions, no I/O.

Statuses and actions follow the Enmeshed Backbone. `RULES` is the whole machine:
for each action, the statuses it may start from, who may take it, and the status after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from domain import decision
from domain.decision import Rejection, unknown_command
from schemas.commands import ChangeRelationship, Command, OpenRelationship
from schemas.events import Event, RelationshipChanged, RelationshipCreated

Status = Literal[
    "Pending", "Active", "Rejected", "Revoked", "Terminated", "DeletionProposed", "ReadyForDeletion"
]
Party = Literal["to", "from", "either", "reactivation_peer", "reactivation_requester"]

PENDING, ACTIVE, REJECTED, REVOKED = "Pending", "Active", "Rejected", "Revoked"
TERMINATED, DELETION_PROPOSED, READY_FOR_DELETION = (
    "Terminated",
    "DeletionProposed",
    "ReadyForDeletion",
)

# While one of these exists between two identities, neither can request another.
OPEN_STATUSES = frozenset({PENDING, ACTIVE, TERMINATED, DELETION_PROPOSED})

WRONG_STATUS = "error.platform.validation.relationship.relationshipIsNotInCorrectStatus"
NOT_YOURS_TO_DO = "error.platform.validation.relationship.actionNotAllowedForThisParty"
ALREADY_EXISTS = "error.platform.validation.relationshipRequest.relationshipToTargetAlreadyExists"
OPEN_REACTIVATION = (
    "error.platform.validation.relationship.cannotRequestReactivationWhenThereIsAnOpenRequest"
)
NO_REACTIVATION = "error.platform.validation.relationship.noOpenReactivationRequest"
ALREADY_DECOMPOSED = "error.platform.validation.relationship.relationshipAlreadyDecomposed"
NOT_FOUND = decision.NOT_FOUND


@dataclass(frozen=True)
class Rule:
    from_statuses: frozenset[str]
    party: Party
    to_status: str | None  # None: decided by the action's own logic (decomposition)


RULES: dict[str, Rule] = {
    "Accept": Rule(frozenset({PENDING}), "to", ACTIVE),
    "Reject": Rule(frozenset({PENDING}), "to", REJECTED),
    "Revoke": Rule(frozenset({PENDING}), "from", REVOKED),
    "Terminate": Rule(frozenset({ACTIVE}), "either", TERMINATED),
    "RequestReactivation": Rule(frozenset({TERMINATED}), "either", TERMINATED),
    "AcceptReactivation": Rule(frozenset({TERMINATED}), "reactivation_peer", ACTIVE),
    "RejectReactivation": Rule(frozenset({TERMINATED}), "reactivation_peer", TERMINATED),
    "RevokeReactivation": Rule(frozenset({TERMINATED}), "reactivation_requester", TERMINATED),
    # The first party to decompose proposes deletion, the second makes it final.
    "Decompose": Rule(
        frozenset({TERMINATED, REJECTED, REVOKED, DELETION_PROPOSED}), "either", None
    ),
}
ACTIONS = frozenset(RULES)


@dataclass(frozen=True, slots=True)
class Relationship:
    id: str
    template_id: str
    from_address: str
    to_address: str
    status: str
    reactivation_requested_by: str | None = None
    decomposed_by: tuple[str, ...] = ()

    def party(self, address: str) -> bool:
        return address in (self.from_address, self.to_address)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "template_id": self.template_id,
            "from_address": self.from_address,
            "to_address": self.to_address,
            "status": self.status,
            "reactivation_requested_by": self.reactivation_requested_by,
            "decomposed_by": list(self.decomposed_by),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Relationship:
        return cls(**{**raw, "decomposed_by": tuple(raw.get("decomposed_by", ()))})


@dataclass(frozen=True, slots=True)
class PairState:
    version: int = 0
    # by relationship id; a new mapping on every change, never updated in place
    relationships: Mapping[str, Relationship] = field(default_factory=dict)

    def open_one(self) -> Relationship | None:
        return next((r for r in self.relationships.values() if r.status in OPEN_STATUSES), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "relationships": {k: r.to_dict() for k, r in self.relationships.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> PairState:
        if not raw:
            return cls()
        rels = {k: Relationship.from_dict(v) for k, v in raw["relationships"].items()}
        return cls(raw["version"], rels)


def pair_id(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def decide(state: PairState, command: Command, now: datetime) -> list[Event] | Rejection:
    match command:
        case OpenRelationship():
            return _open(state, command)
        case ChangeRelationship():
            return _change(state, command)
    return unknown_command(command)


def _open(state: PairState, cmd: OpenRelationship) -> list[Event] | Rejection:
    if cmd.relationship_id in state.relationships:
        return []  # the same request again (a redelivery): it succeeded before
    existing = state.open_one()
    if existing is not None:
        return Rejection(
            ALREADY_EXISTS,
            f"there is already a relationship ({existing.status}) between these identities",
        )
    return [
        RelationshipCreated(
            relationship_id=cmd.relationship_id,
            template_id=cmd.template_id,
            from_address=cmd.from_address,
            from_device=cmd.from_device,
            to_address=cmd.to_address,
            creation_content=cmd.creation_content,
            created_at=cmd.requested_at,
        )
    ]


def _change(state: PairState, cmd: ChangeRelationship) -> list[Event] | Rejection:
    rel = state.relationships.get(cmd.relationship_id)
    actor, action = cmd.actor, cmd.action
    if rel is None or not rel.party(actor):
        return Rejection(NOT_FOUND, "relationship not found")
    rule = RULES.get(action)
    if rule is None:
        return Rejection(decision.INVALID_PROPERTY_VALUE, "unknown action")
    if rel.status not in rule.from_statuses:
        return Rejection(WRONG_STATUS, f"cannot {action} a relationship that is {rel.status}")
    rejected = _check_party(rel, rule.party, actor, action)
    if rejected:
        return rejected
    status, requested_by = rule.to_status, rel.reactivation_requested_by
    if action == "RequestReactivation":
        requested_by = actor
    elif action in ("AcceptReactivation", "RejectReactivation", "RevokeReactivation"):
        requested_by = None
    elif action == "Decompose":
        if actor in rel.decomposed_by:
            return Rejection(ALREADY_DECOMPOSED, "you have decomposed this relationship")
        status = READY_FOR_DELETION if rel.decomposed_by else DELETION_PROPOSED
    assert status is not None  # only a decomposition has no status of its rule
    return [
        RelationshipChanged(
            relationship_id=rel.id,
            from_address=rel.from_address,
            to_address=rel.to_address,
            action=action,
            actor=actor,
            actor_device=cmd.actor_device,
            status=status,
            old_status=rel.status,
            content=cmd.content,
            reactivation_requested_by=requested_by,
            occurred_at=cmd.requested_at,
        )
    ]


def _check_party(rel: Relationship, party: Party, actor: str, action: str) -> Rejection | None:
    pending_by = rel.reactivation_requested_by
    if party == "to" and actor != rel.to_address:
        return Rejection(NOT_YOURS_TO_DO, f"only the template owner can {action} a request")
    if party == "from" and actor != rel.from_address:
        return Rejection(NOT_YOURS_TO_DO, f"only the requester can {action} a request")
    if action == "RequestReactivation" and pending_by is not None:
        return Rejection(OPEN_REACTIVATION, "a reactivation request is open already")
    if party == "reactivation_peer":
        if pending_by is None:
            return Rejection(NO_REACTIVATION, "there is no reactivation request to answer")
        if pending_by == actor:
            return Rejection(NOT_YOURS_TO_DO, "the peer answers a reactivation request")
    if party == "reactivation_requester" and pending_by != actor:
        return Rejection(NO_REACTIVATION, "you have no reactivation request to revoke")
    return None


def evolve(state: PairState, event: Event) -> PairState:
    match event:
        case RelationshipCreated():
            created = Relationship(
                event.relationship_id,
                event.template_id,
                event.from_address,
                event.to_address,
                PENDING,
            )
            state = _with(state, created)
        case RelationshipChanged():
            rel = state.relationships[event.relationship_id]
            decomposed = (*rel.decomposed_by, event.actor)
            changed = replace(
                rel,
                status=event.status,
                reactivation_requested_by=event.reactivation_requested_by,
                decomposed_by=decomposed if event.action == "Decompose" else rel.decomposed_by,
            )
            state = _with(state, changed)
    return replace(state, version=state.version + 1)


def _with(state: PairState, rel: Relationship) -> PairState:
    return replace(state, relationships={**state.relationships, rel.id: rel})
