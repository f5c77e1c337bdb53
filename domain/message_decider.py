"""Messages: stored once, addressed to 1..N recipients, each receipt recorded once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain import decision
from domain.decision import Rejection, unknown_command
from schemas.commands import Command, MarkMessageReceived, SendMessage
from schemas.events import Event, MessageReceived, MessageSent

NOT_FOUND = decision.NOT_FOUND
ALREADY_EXISTS = "error.platform.validation.message.alreadyExists"


@dataclass(frozen=True, slots=True)
class MessageState:
    version: int = 0
    sender: str = ""
    recipients: tuple[str, ...] = ()
    received_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "received_by": list(self.received_by),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> MessageState:
        raw = raw or {}
        return cls(
            version=raw.get("version", 0),
            sender=raw.get("sender", ""),
            recipients=tuple(raw.get("recipients", ())),
            received_by=tuple(raw.get("received_by", ())),
        )


def decide(state: MessageState, command: Command, now: datetime) -> list[Event] | Rejection:
    match command:
        case SendMessage():
            if state.version > 0:
                return Rejection(ALREADY_EXISTS, "a message with this id exists")
            return [
                MessageSent(
                    message_id=command.message_id,
                    sender=command.sender,
                    sender_device=command.sender_device,
                    body=command.body,
                    attachments=command.attachments,
                    recipients=command.recipients,
                    created_at=command.requested_at,
                )
            ]
        case MarkMessageReceived():
            # The API appends a message's MessageSent itself (no decider hop on the send
            # path), so this decider knows a message's parties from the command, as the API
            # read them; what it keeps is who received it, once.
            recipients = state.recipients or command.recipients
            sender = state.sender or command.sender or ""
            if command.recipient not in recipients:
                return Rejection(NOT_FOUND, "message not found")
            if command.recipient in state.received_by:
                return []  # received before: the first receipt counts
            return [
                MessageReceived(
                    message_id=command.message_id,
                    sender=sender,
                    recipient=command.recipient,
                    recipient_device=command.recipient_device,
                    received_at=command.requested_at,
                )
            ]
    return unknown_command(command)


def evolve(state: MessageState, event: Event) -> MessageState:
    match event:
        case MessageSent():
            state = replace(
                state,
                sender=event.sender,
                recipients=tuple(r.address for r in event.recipients),
            )
        case MessageReceived():
            state = replace(state, received_by=(*state.received_by, event.recipient))
    return replace(state, version=state.version + 1)
