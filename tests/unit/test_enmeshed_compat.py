"""The pure parts of the Enmeshed compatibility: the sync's view of mailbox entries, byte
encoding per API version, and the owner signature packed with a file's properties."""

from __future__ import annotations

import base64
import contextvars

from api.content import decode_content
from api.enmeshed_events import enmeshed_event
from api.routers.files import pack_properties, unpack_properties
from api.versioning import _urlsafe, encode_bytes
from domain.mailbox_router import entries_for

ME, PEER = "did:e:localhost:dids:00000000000000000001", "did:e:localhost:dids:00000000000000000002"


def test_messages_carry_the_id_upstream_reads() -> None:
    received = {"messageId": "MSGa", "createdBy": PEER, "body": "x", "encryptedKey": "k"}
    assert enmeshed_event("MessageReceived", received, ME) == ("MessageReceived", {"id": "MSGa"})
    delivered = {"messageId": "MSGa", "recipient": PEER}
    assert enmeshed_event("MessageDelivered", delivered, ME) == ("MessageDelivered", {"id": "MSGa"})


def test_our_own_entry_types_are_not_handed_to_the_client() -> None:
    for kind in (
        "MessageSent",
        "DeviceRegistered",
        "DeviceDeleted",
        "RelationshipTemplateAllocated",
        "SomethingAddedLater",
    ):
        assert enmeshed_event(kind, {"messageId": "MSGa", "deviceId": "DVCa"}, ME) is None


def test_relationship_changes_go_to_the_peer_only() -> None:
    created = {"relationship_id": "RELa", "from_address": PEER, "to_address": ME}
    entries = entries_for("RelationshipCreated", created)
    seen = {who: enmeshed_event(kind, payload, who) for who, kind, payload in entries}
    assert seen[ME] == (
        "RelationshipStatusChanged",
        {"relationshipId": "RELa", "newStatus": "Pending"},
    )
    assert seen[PEER] is None  # the requester's own change
    decomposed = {
        "relationship_id": "RELa",
        "from_address": PEER,
        "to_address": ME,
        "actor": PEER,
        "status": "DeletionProposed",
        "action": "Decompose",
    }
    seen = {
        who: enmeshed_event(kind, payload, who)
        for who, kind, payload in entries_for("RelationshipChanged", decomposed)
    }
    assert seen[ME] == (
        "RelationshipStatusChanged",
        {"relationshipId": "RELa", "newStatus": "DeletionProposed"},
    )
    assert seen[PEER] is None


def test_v2_writes_base64url_without_padding_v1_standard_and_both_are_read() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF, 0x00])  # +, / and padding in standard base64

    def encoded(urlsafe: bool) -> str:
        def run() -> str:
            _urlsafe.set(urlsafe)  # what the version's router dependency sets
            return encode_bytes(raw)

        return contextvars.copy_context().run(run)

    assert encoded(True) == "-_-_AA"
    assert encoded(False) == "+/+/AA=="
    assert decode_content("-_-_AA", "x") == raw == decode_content("+/+/AA==", "x")
    assert decode_content(base64.urlsafe_b64encode(raw).decode(), "x") == raw


def test_owner_signature_travels_with_the_properties() -> None:
    assert unpack_properties(pack_properties(b"props", "sig")) == (b"props", "sig")
    assert unpack_properties(pack_properties(b"props", None)) == (b"props", None)
    assert unpack_properties(b"") == (b"", None)
