"""Who learns of an event (domain/mailbox_router.py): the mailbox entries a client's sync and
stream are built from, so a missing or misaddressed entry is a message or a relationship
change someone never hears of."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from domain.mailbox_router import INLINE_BODY_BYTES, entries_for

A, B, C = "did:e:x:dids:aaaa", "did:e:x:dids:bbbb", "did:e:x:dids:cccc"
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def message_sent(body: bytes, *recipients: str) -> dict[str, Any]:
    return {
        "message_id": "MSG1",
        "sender": A,
        "sender_device": "DVC1",
        "created_at": AT,
        "attachments": ["FIL1"],
        "body": body,
        "recipients": [{"address": r, "encrypted_key": r.encode()} for r in recipients],
    }


def test_a_message_reaches_each_recipient_with_its_own_key_and_the_sender_once() -> None:
    entries = entries_for("MessageSent", message_sent(b"cipher", B, C))

    assert [(to, kind) for to, kind, _ in entries] == [
        (B, "MessageReceived"),
        (C, "MessageReceived"),
        (A, "MessageSent"),
    ]
    for to, _, payload in entries[:2]:
        assert base64.b64decode(payload["encryptedKey"]) == to.encode()  # never another's
        assert payload["createdBy"] == A and payload["createdByDevice"] == "DVC1"
        assert payload["attachments"] == ["FIL1"] and payload["createdAt"] == AT.isoformat()
        assert base64.b64decode(payload["body"]) == b"cipher"
    assert entries[2][2] == {"messageId": "MSG1"}  # the sender's own entry carries no key


def test_a_large_body_is_left_out_of_the_entry_to_be_fetched_by_id() -> None:
    at_limit = entries_for("MessageSent", message_sent(b"x" * INLINE_BODY_BYTES, B))
    over = entries_for("MessageSent", message_sent(b"x" * (INLINE_BODY_BYTES + 1), B))

    assert "body" in at_limit[0][2]
    assert "body" not in over[0][2] and over[0][2]["messageId"] == "MSG1"


def test_a_receipt_goes_to_the_sender_only() -> None:
    body = {"message_id": "MSG1", "recipient": B, "sender": A}
    assert entries_for("MessageReceived", body) == [
        (A, "MessageDelivered", {"messageId": "MSG1", "recipient": B})
    ]


def test_device_changes_reach_the_identitys_other_devices() -> None:
    for name in ("DeviceRegistered", "DeviceDeleted"):
        assert entries_for(name, {"address": A, "device_id": "DVC2"}) == [
            (A, name, {"deviceId": "DVC2"})
        ]


def test_a_new_relationship_reaches_both_parties_with_its_actor() -> None:
    body = {"relationship_id": "REL1", "from_address": A, "to_address": B}
    payload = {"relationshipId": "REL1", "status": "Pending", "actor": A}
    assert entries_for("RelationshipCreated", body) == [
        (B, "RelationshipStatusChanged", payload),
        (A, "RelationshipStatusChanged", payload),
    ]


def test_a_change_tells_the_peer_what_happened_whoever_of_the_two_acted() -> None:
    def change(actor: str, action: str, status: str) -> list[tuple[str, str, dict[str, Any]]]:
        body = {
            "relationship_id": "REL1",
            "from_address": A,
            "to_address": B,
            "actor": actor,
            "action": action,
            "status": status,
        }
        return entries_for("RelationshipChanged", body)

    accepted = change(B, "Accept", "Active")
    assert [(to, kind) for to, kind, _ in accepted] == [
        (A, "RelationshipStatusChanged"),
        (B, "RelationshipStatusChanged"),
    ]
    assert accepted[0][2] == {"relationshipId": "REL1", "status": "Active", "actor": B}

    decomposed = change(A, "Decompose", "DeletionProposed")
    assert [(to, kind) for to, kind, _ in decomposed] == [
        (B, "RelationshipDecomposedByPeer"),
        (A, "RelationshipStatusChanged"),
    ]
    reactivation = change(A, "RequestReactivation", "Terminated")
    assert reactivation[0][:2] == (B, "RelationshipReactivationRequested")


def test_an_allocation_reaches_the_templates_owner() -> None:
    body = {"template_id": "RLT1", "relationship_id": "REL1", "owner": A}
    assert entries_for("TemplateAllocated", body) == [
        (A, "RelationshipTemplateAllocated", {"templateId": "RLT1", "relationshipId": "REL1"})
    ]


def test_events_nobody_must_hear_of_make_no_entry() -> None:
    assert entries_for("TokenCreated", {"token_id": "TOK1", "owner": A}) == []
    assert entries_for("IdentityCreated", {"address": A}) == []
