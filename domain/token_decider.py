"""Tokens: encrypted content an identity shares by id (a QR code) until it expires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.decision import Event, Rejection

NOT_FOUND = "error.platform.recordNotFound"
ALREADY_EXISTS = "error.platform.validation.token.alreadyExists"


@dataclass
class TokenState:
    version: int = 0
    owner: str = ""
    deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TokenState:
        return cls(**{k: v for k, v in (raw or {}).items() if k != "handled"})


def decide(
    state: TokenState, name: str, cmd: dict[str, Any], now: datetime
) -> list[Event] | Rejection:
    if name == "CreateToken":
        if state.version > 0:
            return Rejection(ALREADY_EXISTS, "a token with this id exists")
        keep = (
            "token_id",
            "owner",
            "owner_device",
            "content",
            "expires_at",
            "for_identity",
            "password_hash",
        )
        return [("TokenCreated", {**{k: cmd[k] for k in keep}, "created_at": cmd["requested_at"]})]
    if name == "DeleteToken":
        if state.version == 0 or state.deleted or cmd["actor"] != state.owner:
            return Rejection(NOT_FOUND, "token not found")
        body = {
            "token_id": cmd["token_id"],
            "owner": state.owner,
            "deleted_at": cmd["requested_at"],
        }
        return [("TokenDeleted", body)]
    return Rejection("error.platform.validation.unknownCommand", f"unknown command {name}")


def evolve(state: TokenState, name: str, event: dict[str, Any]) -> TokenState:
    if name == "TokenCreated":
        state.owner = event["owner"]
    elif name == "TokenDeleted":
        state.deleted = True
    state.version += 1
    return state
