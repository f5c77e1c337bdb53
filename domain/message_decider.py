"""Messages: stored once, addressed to 1..N recipients, each receipt recorded once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.decision import Event, Rejection

NOT_FOUND = "error.platform.recordNotFound"
ALREADY_EXISTS = "error.platform.validation.message.alreadyExists"


@dataclass
class MessageState:
    version: int = 0
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    received_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(
            vars(self), recipients=list(self.recipients), received_by=list(self.received_by)
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> MessageState:
        return cls(**{k: v for k, v in (raw or {}).items() if k != "handled"})


def decide(
    state: MessageState, name: str, cmd: dict[str, Any], now: datetime
) -> list[Event] | Rejection:
    if name == "SendMessage":
        if state.version > 0:
            return Rejection(ALREADY_EXISTS, "a message with this id exists")
        keep = ("message_id", "sender", "sender_device", "body", "attachments", "recipients")
        return [("MessageSent", {**{k: cmd[k] for k in keep}, "created_at": cmd["requested_at"]})]
    if name == "MarkMessageReceived":
        # The API appends a message's MessageSent itself (no decider hop on the send path),
        # so this decider knows a message's parties from the command, as the API read them;
        # what it keeps is who received it, once.
        recipients = state.recipients or list(cmd.get("recipients") or [])
        sender = state.sender or cmd.get("sender") or ""
        if cmd["recipient"] not in recipients:
            return Rejection(NOT_FOUND, "message not found")
        if cmd["recipient"] in state.received_by:
            return []  # received before: the first receipt counts
        return [
            (
                "MessageReceived",
                {
                    "message_id": cmd["message_id"],
                    "sender": sender,
                    "recipient": cmd["recipient"],
                    "recipient_device": cmd["recipient_device"],
                    "received_at": cmd["requested_at"],
                },
            )
        ]
    return Rejection("error.platform.validation.unknownCommand", f"unknown command {name}")


def evolve(state: MessageState, name: str, event: dict[str, Any]) -> MessageState:
    if name == "MessageSent":
        state.sender = event["sender"]
        state.recipients = [r["address"] for r in event["recipients"]]
    elif name == "MessageReceived":
        state.received_by.append(event["recipient"])
    state.version += 1
    return state
