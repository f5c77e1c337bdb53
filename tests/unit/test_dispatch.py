"""Every command is one aggregate's: its decider matches the command's type, and every
other decider refuses it as unknown. A command type no decider handles (a schema added
without its rule) or two deciders claim fails here, not on a topic at run time."""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType

from domain import (
    file_decider,
    identity_decider,
    message_decider,
    relationship_decider,
    template_decider,
    token_decider,
)
from domain.decision import UNKNOWN_COMMAND, Rejection
from schemas import commands
from schemas.typed import command_from_avro
from tests.unit.test_typed import SCHEMAS, example

NOW = datetime(2026, 11, 30, tzinfo=UTC)
DECIDERS: dict[ModuleType, object] = {
    identity_decider: identity_decider.IdentityState(),
    # An existing template: a missing one refuses every command as not found first.
    template_decider: template_decider.TemplateState(version=1, owner="did:e:owner"),
    token_decider: token_decider.TokenState(),
    file_decider: file_decider.FileState(),
    message_decider: message_decider.MessageState(),
    relationship_decider: relationship_decider.PairState(),
}
# Commands an agent handles itself, before any decider (streams/agent_steps.py): the final
# step of a deletion, and a deleted identity's state being forgotten.
NOT_DECIDED = {"FinishIdentityDeletion", "ForgetIdentity"}


def _handles(rules: ModuleType, state: object, name: str) -> bool:
    command = command_from_avro(name, example(SCHEMAS[name], True))
    outcome = rules.decide(state, command, NOW)
    return not (isinstance(outcome, Rejection) and outcome.code == UNKNOWN_COMMAND)


def test_every_command_has_exactly_one_decider() -> None:
    owners = {
        name: [r.__name__ for r, state in DECIDERS.items() if _handles(r, state, name)]
        for name in commands.TYPES
    }
    assert {n: o for n, o in owners.items() if n not in NOT_DECIDED and len(o) != 1} == {}
    assert all(owners[n] == [] for n in NOT_DECIDED)
    assert owners["SendMessage"] == ["domain.message_decider"]
    assert owners["StartSyncRun"] == ["domain.identity_decider"]  # sync is the identity's
