"""Relationship templates: who owns one, until when it is valid, and how many peers it
admits. The template's decider is the single writer of its allocations, so with
`max_allocations` N exactly N peers get a relationship however many ask at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.decision import Event, Rejection

NOT_FOUND = "error.platform.recordNotFound"
EXHAUSTED = "error.platform.validation.relationshipTemplate.maxNumberOfAllocationsExhausted"
EXPIRED = "error.platform.validation.relationshipTemplate.expired"
TO_YOURSELF = (
    "error.platform.validation.relationshipRequest.cannotSendRelationshipRequestToYourself"
)
ALREADY_EXISTS = "error.platform.validation.relationshipTemplate.alreadyExists"


@dataclass
class TemplateState:
    version: int = 0
    owner: str = ""
    expires_at: float | None = None  # epoch seconds
    max_allocations: int | None = None
    for_identity: str | None = None
    deleted: bool = False
    allocations: dict[str, str] = field(default_factory=dict)  # requester -> relationship id
    # A password-protected template admits only peers that fetched it with its password
    # (upstream Enmeshed: only a peer that collected it); those peers, in order.
    password_protected: bool = False
    collectors: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.version > 0 and not self.deleted

    def to_dict(self) -> dict[str, Any]:
        return dict(
            vars(self), allocations=dict(self.allocations), collectors=list(self.collectors)
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TemplateState:
        return cls(**{k: v for k, v in (raw or {}).items() if k != "handled"})


def decide(
    state: TemplateState, name: str, cmd: dict[str, Any], now: datetime
) -> list[Event] | Rejection:
    if name == "CreateTemplate":
        if state.version > 0:
            return Rejection(ALREADY_EXISTS, "a template with this id exists")
        return [("TemplateCreated", _created(cmd))]
    if not state.exists:
        return Rejection(NOT_FOUND, "relationship template not found")
    if name == "DeleteTemplate":
        if cmd["actor"] != state.owner:
            return Rejection(NOT_FOUND, "relationship template not found")
        deleted = {"template_id": cmd["template_id"], "owner": state.owner}
        return [("TemplateDeleted", {**deleted, "deleted_at": cmd["requested_at"]})]
    if name == "RequestRelationship":
        return _allocate(state, cmd, now)
    if name == "CollectTemplate":
        collector = cmd["collector"]
        if not state.password_protected or collector in (state.owner, *state.collectors):
            return []
        collected = {
            "template_id": cmd["template_id"],
            "owner": state.owner,
            "collector": collector,
            "collected_at": cmd["requested_at"],
        }
        return [("TemplateCollected", collected)]
    if name == "ReleaseAllocation":
        if state.allocations.get(cmd["requester"]) != cmd["relationship_id"]:
            return []  # released before (a redelivery): nothing to do
        return [("TemplateAllocationReleased", _allocation(state, cmd, "released_at"))]
    return Rejection("error.platform.validation.unknownCommand", f"unknown command {name}")


def _created(cmd: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "template_id",
        "owner",
        "owner_device",
        "content",
        "expires_at",
        "max_allocations",
        "for_identity",
        "password_hash",
    )
    return {**{k: cmd[k] for k in keep}, "created_at": cmd["requested_at"]}


def _allocate(state: TemplateState, cmd: dict[str, Any], now: datetime) -> list[Event] | Rejection:
    requester = cmd["requester"]
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
    return [("TemplateAllocated", _allocation(state, cmd, "allocated_at"))]


def _allocation(state: TemplateState, cmd: dict[str, Any], when: str) -> dict[str, Any]:
    return {
        "template_id": cmd["template_id"],
        "owner": state.owner,
        "requester": cmd["requester"],
        "relationship_id": cmd["relationship_id"],
        when: cmd["requested_at"],
    }


def evolve(state: TemplateState, name: str, event: dict[str, Any]) -> TemplateState:
    if name == "TemplateCreated":
        expires = event["expires_at"]
        state = TemplateState(
            owner=event["owner"],
            expires_at=expires.timestamp() if expires else None,
            max_allocations=event["max_allocations"],
            for_identity=event["for_identity"],
            version=state.version,
            password_protected=event.get("password_hash") is not None,
        )
    elif name == "TemplateDeleted":
        state.deleted = True
    elif name == "TemplateAllocated":
        state.allocations[event["requester"]] = event["relationship_id"]
    elif name == "TemplateCollected":
        state.collectors.append(event["collector"])
    elif name == "TemplateAllocationReleased":
        state.allocations.pop(event["requester"], None)
    state.version += 1
    return state
