"""Which pure decider runs for each aggregate type, with the state table it keeps, whose
data key seals its events (streams/deciding.py `Decider`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain import (
    file_decider,
    identity_decider,
    message_decider,
    relationship_decider,
    template_decider,
    token_decider,
)
from store.envelopes import Opened
from streams.deciding import Decider


def _own_address(state: Any, cmd: Opened) -> str:
    return str(cmd.body["address"])


def _owner(state: Any, cmd: Opened) -> str:
    return str(state.owner or cmd.body["owner"])


def _message_party(state: Any, cmd: Opened) -> str:
    # A receipt is the recipient's; a SendMessage (still decided when read from an older
    # log) the sender's.
    return str(cmd.body["sender"] if cmd.name == "SendMessage" else cmd.body["recipient"])


def _pair_actor(state: Any, cmd: Opened) -> str:
    return str(cmd.body.get("actor") or cmd.body["from_address"])


@dataclass(frozen=True)
class Aggregates:
    identities: Decider
    templates: Decider
    tokens: Decider
    files: Decider
    messages: Decider
    pairs: Decider


def aggregates(table: Callable[[str], Any]) -> Aggregates:
    """The six deciders, each with the state table `table(name)` makes for it."""
    return Aggregates(
        identities=Decider(
            "identity",
            table("identities"),
            identity_decider.IdentityState.from_dict,
            identity_decider.decide,
            identity_decider.evolve,
            sealed_for=_own_address,
        ),
        templates=Decider(
            "template",
            table("templates"),
            template_decider.TemplateState.from_dict,
            template_decider.decide,
            template_decider.evolve,
            sealed_for=_owner,
        ),
        tokens=Decider(
            "token",
            table("tokens"),
            token_decider.TokenState.from_dict,
            token_decider.decide,
            token_decider.evolve,
            sealed_for=_owner,
        ),
        files=Decider(
            "file",
            table("files"),
            file_decider.FileState.from_dict,
            file_decider.decide,
            file_decider.evolve,
            sealed_for=_owner,
        ),
        messages=Decider(
            "message",
            table("messages"),
            message_decider.MessageState.from_dict,
            message_decider.decide,
            message_decider.evolve,
            sealed_for=_message_party,
        ),
        pairs=Decider(
            "pair",
            table("pairs"),
            relationship_decider.PairState.from_dict,
            relationship_decider.decide,
            relationship_decider.evolve,
            sealed_for=_pair_actor,
        ),
    )
