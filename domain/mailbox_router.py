"""Which identities must learn of an event, and as which Enmeshed external event.

Pure: the projector calls it after writing an event and sends one `MailboxEntry` per
recipient to the mailbox topic, where the sequencer numbers them per identity. Both parties
of a relationship get an entry for every change: the peer to learn of it, the actor so that
its other devices do.
"""

from __future__ import annotations

import base64
from typing import Any

Entry = tuple[str, str, dict[str, Any]]  # (recipient address, external event type, payload)

_BY_ACTION = {
    "RequestReactivation": "RelationshipReactivationRequested",
    "AcceptReactivation": "RelationshipReactivationCompleted",
    "RejectReactivation": "RelationshipReactivationCompleted",
    "RevokeReactivation": "RelationshipReactivationCompleted",
    "Decompose": "RelationshipDecomposedByPeer",
}


# A received message's ciphertext rides in its mailbox entry up to this size, so a client
# can act without another round trip; larger bodies are fetched by id.
INLINE_BODY_BYTES = 4096


def entries_for(event_name: str, body: dict[str, Any]) -> list[Entry]:
    if event_name == "MessageSent":
        return _message_sent(body)
    if event_name == "MessageReceived":
        receipt = {"messageId": body["message_id"], "recipient": body["recipient"]}
        return [(body["sender"], "MessageDelivered", receipt)]
    if event_name in ("DeviceRegistered", "DeviceDeleted"):
        return [(body["address"], event_name, {"deviceId": body["device_id"]})]
    if event_name == "TemplateAllocated":
        allocation = {"templateId": body["template_id"], "relationshipId": body["relationship_id"]}
        return [(body["owner"], "RelationshipTemplateAllocated", allocation)]
    if event_name == "RelationshipCreated":
        # `actor`: who caused the change. The Enmeshed sync (api/enmeshed_events.py) hands
        # the client only its peers' changes, as upstream does; the mailbox keeps both.
        payload = {
            "relationshipId": body["relationship_id"],
            "status": "Pending",
            "actor": body["from_address"],
        }
        return [
            (body["to_address"], "RelationshipStatusChanged", payload),
            (body["from_address"], "RelationshipStatusChanged", payload),
        ]
    if event_name == "RelationshipChanged":
        actor = body["actor"]
        payload = {
            "relationshipId": body["relationship_id"],
            "status": body["status"],
            "actor": actor,
        }
        peer = body["to_address"] if actor == body["from_address"] else body["from_address"]
        for_peer = _BY_ACTION.get(body["action"], "RelationshipStatusChanged")
        return [(peer, for_peer, payload), (actor, "RelationshipStatusChanged", payload)]
    return []


def _message_sent(body: dict[str, Any]) -> list[Entry]:
    common = {
        "messageId": body["message_id"],
        "createdBy": body["sender"],
        "createdByDevice": body["sender_device"],
        "createdAt": body["created_at"].isoformat(),
        "attachments": list(body["attachments"]),
    }
    inline = len(body["body"]) <= INLINE_BODY_BYTES
    if inline:
        common["body"] = base64.b64encode(body["body"]).decode()
    entries: list[Entry] = [
        (
            r["address"],
            "MessageReceived",
            {**common, "encryptedKey": base64.b64encode(r["encrypted_key"]).decode()},
        )
        for r in body["recipients"]
    ]
    entries.append((body["sender"], "MessageSent", {"messageId": body["message_id"]}))
    return entries
