"""A typed decider spoken to in the log's form, `(name, body)`, as the decide loop does.

Table tests of the rules list commands and events as the records the log holds; this
converts them with the worker's own conversion (schemas/typed.py), so a test checks both the
rule and what the log would record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

from domain.decision import Rejection
from schemas.typed import command_from_avro, event_from_avro, to_avro

Record = tuple[str, dict[str, Any]]


class Wire:
    def __init__(self, rules: ModuleType) -> None:
        self.rules = rules

    def decide(
        self, state: Any, name: str, body: dict[str, Any], now: datetime
    ) -> list[Record] | Rejection:
        outcome = self.rules.decide(state, command_from_avro(name, body), now)
        if isinstance(outcome, Rejection):
            return outcome
        return [to_avro(event) for event in outcome]

    def evolve(self, state: Any, name: str, body: dict[str, Any]) -> Any:
        return self.rules.evolve(state, event_from_avro(name, body))


def wire_rule(
    rule: Callable[[Any, Any, datetime], Sequence[Any] | Rejection], name: str
) -> Callable[[Any, dict[str, Any], datetime], list[Record] | Rejection]:
    """One rule function of a decider (a sync run's start, say) for commands named `name`."""

    def decide(state: Any, body: dict[str, Any], now: datetime) -> list[Record] | Rejection:
        outcome = rule(state, command_from_avro(name, body), now)
        if isinstance(outcome, Rejection):
            return outcome
        return [to_avro(event) for event in outcome]

    return decide
