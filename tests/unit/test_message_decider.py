"""The message decider keeps each recipient's first receipt. Messages themselves are
appended by the API (no SendMessage on the send path), so a receipt names the message's
parties as the API read them."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest

from api.error_status import refusal_status
from domain.decision import UNKNOWN_COMMAND, Rejection
from domain.message_decider import MessageState, decide, evolve
from schemas.commands import DeleteToken, MarkMessageReceived, SendMessage
from schemas.events import MessageReceived, MessageSent
from schemas.records import MessageRecipient

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _receipt(recipient: str, device: str = "DVCa") -> MarkMessageReceived:
    return MarkMessageReceived(
        message_id="MSGa",
        recipient=recipient,
        recipient_device=device,
        sender="did:e:s",
        recipients=("did:e:r1", "did:e:r2"),
        requested_at=NOW,
    )


def test_a_recipient_receives_a_message_the_decider_never_saw_sent() -> None:
    events = decide(MessageState(), _receipt("did:e:r1"), NOW)
    received = MessageReceived(
        message_id="MSGa",
        sender="did:e:s",
        recipient="did:e:r1",
        recipient_device="DVCa",
        received_at=NOW,
    )
    assert events == [received]


def test_only_the_first_receipt_of_each_recipient_counts() -> None:
    state = MessageState()
    first = decide(state, _receipt("did:e:r1"), NOW)
    assert isinstance(first, list)
    for event in first:
        state = evolve(state, event)
    assert decide(state, _receipt("did:e:r1", "DVCb"), NOW) == []
    other = decide(state, _receipt("did:e:r2"), NOW)
    assert isinstance(other, list) and other == [
        MessageReceived(
            message_id="MSGa",
            sender="did:e:s",
            recipient="did:e:r2",
            recipient_device="DVCa",
            received_at=NOW,
        )
    ]


def test_someone_not_among_the_recipients_is_refused() -> None:
    refused = decide(MessageState(), _receipt("did:e:stranger"), NOW)
    assert isinstance(refused, Rejection) and refusal_status(refused.code) == 404


def _send() -> SendMessage:
    return SendMessage(
        message_id="MSGa",
        sender="did:e:s",
        sender_device="DVCs",
        body=b"sealed",
        attachments=("FILa",),
        recipients=(MessageRecipient(address="did:e:r1", encrypted_key=b"k1"),),
        requested_at=NOW,
    )


def test_a_message_sent_from_an_older_log_is_stored_once() -> None:
    [sent] = decide(MessageState(), _send(), NOW)  # type: ignore[misc]
    assert sent == MessageSent(
        message_id="MSGa",
        sender="did:e:s",
        sender_device="DVCs",
        body=b"sealed",
        attachments=("FILa",),
        recipients=(MessageRecipient(address="did:e:r1", encrypted_key=b"k1"),),
        created_at=NOW,
    )
    state = evolve(MessageState(), sent)
    assert (state.version, state.sender, state.recipients) == (1, "did:e:s", ("did:e:r1",))
    again = decide(state, _send(), NOW)
    assert isinstance(again, Rejection) and refusal_status(again.code) == 400


def test_evolve_returns_a_new_state_and_leaves_the_old_one() -> None:
    before = MessageState.from_dict({"version": 1, "recipients": ["did:e:r1"]})
    [received] = decide(before, _receipt("did:e:r1"), NOW)  # type: ignore[misc]
    after = evolve(before, received)
    assert (before.version, before.received_by) == (1, ())
    assert (after.version, after.received_by) == (2, ("did:e:r1",))
    with pytest.raises(FrozenInstanceError):
        after.version = 3  # type: ignore[misc]
    assert MessageState.from_dict(after.to_dict()) == after  # as the table keeps it


def test_another_aggregates_command_is_refused() -> None:
    other = DeleteToken(token_id="TOKa", actor="did:e:s", requested_at=NOW)
    refused = decide(MessageState(), other, NOW)
    assert isinstance(refused, Rejection) and refused.code == UNKNOWN_COMMAND
    assert refused.message == "unknown command DeleteToken"
