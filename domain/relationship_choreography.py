"""The steps of a relationship request across two aggregates, as pure functions.

A request is first allocated by the template's decider (the single writer of its
allocations), then opened by the decider of the *pair* of identities (the single writer of
their relationships). A refused opening gives the allocation back. These functions say what
each next command carries; the agents (streams/agent_steps.py) send them.
"""

from __future__ import annotations

from domain.relationship_decider import pair_id
from schemas.commands import OpenRelationship, ReleaseAllocation, RequestRelationship


def opening(request: RequestRelationship, template_owner: str) -> tuple[str, OpenRelationship]:
    """For an allocated `RequestRelationship`: the pair it opens in, and the
    `OpenRelationship` command."""
    command = OpenRelationship(
        template_id=request.template_id,
        relationship_id=request.relationship_id,
        from_address=request.requester,
        from_device=request.requester_device,
        to_address=template_owner,
        creation_content=request.creation_content,
        requested_at=request.requested_at,
    )
    return pair_id(request.requester, template_owner), command


def release(refused_opening: OpenRelationship) -> ReleaseAllocation:
    """For a refused `OpenRelationship`: the `ReleaseAllocation` that gives the template's
    allocation back."""
    return ReleaseAllocation(
        template_id=refused_opening.template_id,
        requester=refused_opening.from_address,
        relationship_id=refused_opening.relationship_id,
        requested_at=refused_opening.requested_at,
    )
