"""Tokens: encrypted content an identity shares by id (a QR code) until it expires."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain import decision
from domain.decision import Rejection, unknown_command
from schemas.commands import Command, CreateToken, DeleteToken
from schemas.events import Event, TokenCreated, TokenDeleted

NOT_FOUND = decision.NOT_FOUND
ALREADY_EXISTS = "error.platform.validation.token.alreadyExists"


@dataclass(frozen=True, slots=True)
class TokenState:
    version: int = 0
    owner: str = ""
    deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "owner": self.owner, "deleted": self.deleted}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TokenState:
        return cls(**{k: v for k, v in (raw or {}).items() if k != "handled"})


def decide(state: TokenState, command: Command, now: datetime) -> list[Event] | Rejection:
    match command:
        case CreateToken():
            if state.version > 0:
                return Rejection(ALREADY_EXISTS, "a token with this id exists")
            return [
                TokenCreated(
                    token_id=command.token_id,
                    owner=command.owner,
                    owner_device=command.owner_device,
                    content=command.content,
                    expires_at=command.expires_at,
                    for_identity=command.for_identity,
                    password_hash=command.password_hash,
                    created_at=command.requested_at,
                )
            ]
        case DeleteToken():
            if state.version == 0 or state.deleted or command.actor != state.owner:
                return Rejection(NOT_FOUND, "token not found")
            return [
                TokenDeleted(
                    token_id=command.token_id, owner=state.owner, deleted_at=command.requested_at
                )
            ]
    return unknown_command(command)


def evolve(state: TokenState, event: Event) -> TokenState:
    match event:
        case TokenCreated():
            state = replace(state, owner=event.owner)
        case TokenDeleted():
            state = replace(state, deleted=True)
    return replace(state, version=state.version + 1)
