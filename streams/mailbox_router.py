"""Which identities must learn of an event, and as which Enmeshed external event.

Pure: the projector calls it after writing an event and sends one `MailboxEntry` per
recipient to the mailbox topic, where the sequencer numbers them per identity. Both parties
of a relationship get an entry for every change: the peer to learn of it, the actor so that
its other devices do.
"""

from __future__ import annotations

from typing import Any

Entry = tuple[str, str, dict[str, Any]]  # (recipient address, external event type, payload)

_BY_ACTION = {
    "RequestReactivation": "RelationshipReactivationRequested",
    "AcceptReactivation": "RelationshipReactivationCompleted",
    "RejectReactivation": "RelationshipReactivationCompleted",
    "RevokeReactivation": "RelationshipReactivationCompleted",
    "Decompose": "RelationshipDecomposedByPeer",
}


def entries_for(event_name: str, body: dict[str, Any]) -> list[Entry]:
    if event_name == "RelationshipCreated":
        payload = {"relationshipId": body["relationship_id"], "status": "Pending"}
        return [
            (body["to_address"], "RelationshipStatusChanged", payload),
            (body["from_address"], "RelationshipStatusChanged", payload),
        ]
    if event_name == "RelationshipChanged":
        payload = {"relationshipId": body["relationship_id"], "status": body["status"]}
        actor = body["actor"]
        peer = body["to_address"] if actor == body["from_address"] else body["from_address"]
        for_peer = _BY_ACTION.get(body["action"], "RelationshipStatusChanged")
        return [(peer, for_peer, payload), (actor, "RelationshipStatusChanged", payload)]
    return []
