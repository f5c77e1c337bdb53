"""The Enmeshed sync's view of a mailbox entry: upstream's external event types and payloads.

The mailbox (our own stream, `/api/v{1,2}/Mailbox`) keeps its richer entries: the sender's
`MessageSent`, `DeviceRegistered`, `RelationshipTemplateAllocated`, the actor's own copy
of a relationship change, inline message bodies. `@nmshd/transport` has a processor only
for upstream's types (nmshd/backbone's `ExternalEvent` types) and turns anything else
into a sync error that comes back three times, so a sync run hands it only those, in
upstream's payload shapes. An entry with no Enmeshed counterpart is left out of the run's
event list; finalizing the run moves past it all the same (a result not reported is a
success, domain/sync_decider.py).
"""

from __future__ import annotations

from typing import Any

# Our entry type -> upstream's, for relationship changes the peer must apply. The client
# reads only `relationshipId` and fetches the relationship itself.
_RELATIONSHIP = {
    "RelationshipStatusChanged": "RelationshipStatusChanged",
    "RelationshipReactivationRequested": "RelationshipReactivationRequested",
    "RelationshipReactivationCompleted": "RelationshipReactivationCompleted",
    # Upstream tells the peer of a decomposition as a status change (to DeletionProposed).
    "RelationshipDecomposedByPeer": "RelationshipStatusChanged",
}

# A peer's deletion, told in every relationship with it (backbone/deletion_policy.py).
_PEER_DELETION = frozenset({"PeerToBeDeleted", "PeerDeletionCancelled", "PeerDeleted"})


def enmeshed_event(
    event_type: str, payload: dict[str, Any], recipient: str
) -> tuple[str, dict[str, Any]] | None:
    """(type, payload) as upstream sends it to `recipient`, or None if upstream sends none."""
    if event_type in ("MessageReceived", "MessageDelivered"):
        return event_type, {"id": payload["messageId"]}
    if event_type in _RELATIONSHIP:
        # Upstream tells only the peer; the actor's own devices learn of their change
        # through the datawallet. Entries written before `actor` existed have none: passed.
        if payload.get("actor") == recipient:
            return None
        out = {"relationshipId": payload["relationshipId"]}
        if "status" in payload:
            out["newStatus"] = payload["status"]
        return _RELATIONSHIP[event_type], out
    if event_type in _PEER_DELETION:
        # Issue 22: upstream's payloads, the relationship and the date, no address.
        return event_type, dict(payload)
    # MessageSent, DeviceRegistered, DeviceDeleted, RelationshipTemplateAllocated and any
    # type added later: our mailbox's own, not Enmeshed's.
    return None
