"""The message decider keeps each recipient's first receipt. Messages themselves are
appended by the API (no SendMessage on the send path), so a receipt names the message's
parties as the API read them."""

from __future__ import annotations

from datetime import UTC, datetime

from api.error_status import refusal_status
from domain.decision import Rejection
from domain.message_decider import MessageState, decide, evolve

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _receipt(recipient: str, device: str = "DVCa") -> dict[str, object]:
    return {
        "message_id": "MSGa",
        "recipient": recipient,
        "recipient_device": device,
        "sender": "did:e:s",
        "recipients": ["did:e:r1", "did:e:r2"],
        "requested_at": NOW,
    }


def test_a_recipient_receives_a_message_the_decider_never_saw_sent() -> None:
    events = decide(MessageState(), "MarkMessageReceived", _receipt("did:e:r1"), NOW)
    received = {
        "message_id": "MSGa",
        "sender": "did:e:s",
        "recipient": "did:e:r1",
        "recipient_device": "DVCa",
        "received_at": NOW,
    }
    assert events == [("MessageReceived", received)]


def test_only_the_first_receipt_of_each_recipient_counts() -> None:
    state = MessageState()
    first = decide(state, "MarkMessageReceived", _receipt("did:e:r1"), NOW)
    assert isinstance(first, list)
    for name, body in first:
        state = evolve(state, name, body)
    assert decide(state, "MarkMessageReceived", _receipt("did:e:r1", "DVCb"), NOW) == []
    other = decide(state, "MarkMessageReceived", _receipt("did:e:r2"), NOW)
    assert isinstance(other, list) and other[0][1]["recipient"] == "did:e:r2"


def test_someone_not_among_the_recipients_is_refused() -> None:
    refused = decide(MessageState(), "MarkMessageReceived", _receipt("did:e:stranger"), NOW)
    assert isinstance(refused, Rejection) and refusal_status(refused.code) == 404
