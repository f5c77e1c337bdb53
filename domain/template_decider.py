"""Relationship templates: who owns one, until when it is valid, and how many peers it
admits. The template's decider is the single writer of its allocations, so with
`max_allocations` N exactly N peers get a relationship however many ask at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from domain import decision
from domain.decision import Rejection, unknown_command
from schemas.commands import (
    CollectTemplate,
    Command,
    CreateTemplate,
    DeleteTemplate,
    ReleaseAllocation,
    RequestRelationship,
)
from schemas.events import (
    Event,
    TemplateAllocated,
    TemplateAllocationReleased,
    TemplateCollected,
    TemplateCreated,
    TemplateDeleted,
)

NOT_FOUND = decision.NOT_FOUND
EXHAUSTED = "error.platform.validation.relationshipTemplate.maxNumberOfAllocationsExhausted"
EXPIRED = "error.platform.validation.relationshipTemplate.expired"
TO_YOURSELF = (
    "error.platform.validation.relationshipRequest.cannotSendRelationshipRequestToYourself"
)
ALREADY_EXISTS = "error.platform.validation.relationshipTemplate.alreadyExists"


@dataclass(frozen=True, slots=True)
class TemplateState:
    version: int = 0
    owner: str = ""
    expires_at: float | None = None  # epoch seconds
    max_allocations: int | None = None
    for_identity: str | None = None
    deleted: bool = False
    # requester -> relationship id; a new mapping on every change, never updated in place
    allocations: Mapping[str, str] = field(default_factory=dict)
    # A password-protected template admits only peers that fetched it with its password
    # (upstream Enmeshed: only a peer that collected it); those peers, in order.
    password_protected: bool = False
    collectors: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.version > 0 and not self.deleted

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "owner": self.owner,
            "expires_at": self.expires_at,
            "max_allocations": self.max_allocations,
            "for_identity": self.for_identity,
            "deleted": self.deleted,
            "allocations": dict(self.allocations),
            "password_protected": self.password_protected,
            "collectors": list(self.collectors),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TemplateState:
        kept = {k: v for k, v in (raw or {}).items() if k != "handled"}
        kept["allocations"] = dict(kept.get("allocations", {}))
        kept["collectors"] = tuple(kept.get("collectors", ()))
        return cls(**kept)


def decide(state: TemplateState, command: Command, now: datetime) -> list[Event] | Rejection:
    if isinstance(command, CreateTemplate):
        if state.version > 0:
            return Rejection(ALREADY_EXISTS, "a template with this id exists")
        return [
            TemplateCreated(
                template_id=command.template_id,
                owner=command.owner,
                owner_device=command.owner_device,
                content=command.content,
                expires_at=command.expires_at,
                max_allocations=command.max_allocations,
                for_identity=command.for_identity,
                password_hash=command.password_hash,
                created_at=command.requested_at,
            )
        ]
    if not state.exists:
        return Rejection(NOT_FOUND, "relationship template not found")
    match command:
        case DeleteTemplate():
            if command.actor != state.owner:
                return Rejection(NOT_FOUND, "relationship template not found")
            return [
                TemplateDeleted(
                    template_id=command.template_id,
                    owner=state.owner,
                    deleted_at=command.requested_at,
                )
            ]
        case RequestRelationship():
            return _allocate(state, command, now)
        case CollectTemplate():
            collector = command.collector
            if not state.password_protected or collector in (state.owner, *state.collectors):
                return []
            return [
                TemplateCollected(
                    template_id=command.template_id,
                    owner=state.owner,
                    collector=collector,
                    collected_at=command.requested_at,
                )
            ]
        case ReleaseAllocation():
            if state.allocations.get(command.requester) != command.relationship_id:
                return []  # released before (a redelivery): nothing to do
            return [
                TemplateAllocationReleased(
                    template_id=command.template_id,
                    owner=state.owner,
                    requester=command.requester,
                    relationship_id=command.relationship_id,
                    released_at=command.requested_at,
                )
            ]
    return unknown_command(command)


def _allocate(
    state: TemplateState, cmd: RequestRelationship, now: datetime
) -> list[Event] | Rejection:
    requester = cmd.requester
    if requester == state.owner:
        return Rejection(TO_YOURSELF, "you cannot request a relationship with yourself")
    if state.for_identity is not None and requester != state.for_identity:
        return Rejection(NOT_FOUND, "relationship template not found")
    if state.expires_at is not None and state.expires_at <= now.timestamp():
        return Rejection(EXPIRED, "the relationship template has expired")
    if requester in state.allocations:
        return []  # this peer holds an allocation already: it counts once
    if state.password_protected and requester not in state.collectors:
        # Upstream answers a template the peer may not collect with "not found" too.
        return Rejection(
            NOT_FOUND, "relationship template not found (fetch it with its password first)"
        )
    if state.max_allocations is not None and len(state.allocations) >= state.max_allocations:
        return Rejection(EXHAUSTED, "the relationship template has no allocations left")
    return [
        TemplateAllocated(
            template_id=cmd.template_id,
            owner=state.owner,
            requester=requester,
            relationship_id=cmd.relationship_id,
            allocated_at=cmd.requested_at,
        )
    ]


def evolve(state: TemplateState, event: Event) -> TemplateState:
    match event:
        case TemplateCreated():
            expires = event.expires_at
            state = TemplateState(
                owner=event.owner,
                expires_at=expires.timestamp() if expires else None,
                max_allocations=event.max_allocations,
                for_identity=event.for_identity,
                version=state.version,
                password_protected=event.password_hash is not None,
            )
        case TemplateDeleted():
            state = replace(state, deleted=True)
        case TemplateAllocated():
            allocations = {**state.allocations, event.requester: event.relationship_id}
            state = replace(state, allocations=allocations)
        case TemplateCollected():
            state = replace(state, collectors=(*state.collectors, event.collector))
        case TemplateAllocationReleased():
            allocations = {r: i for r, i in state.allocations.items() if r != event.requester}
            state = replace(state, allocations=allocations)
    return replace(state, version=state.version + 1)
