"""The one place where a command's or event's Avro record becomes its type and back.

A record on the log is `(name, body)`: the envelope's `type` and the body as the current
schema reads it (schemas/codec.py). The deciders see the frozen types of
schemas/commands.py and schemas/events.py instead; a worker converts at its boundary
(streams/deciding.py). Arrays become tuples (the types are immutable) and back to lists.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

from schemas import commands, events
from schemas.commands import Command
from schemas.events import Event

Message = Command | Event
TYPES: dict[str, type[Message]] = {**commands.TYPES, **events.TYPES}

Convert = Callable[[Any], Any]
T = TypeVar("T")


def _same(value: Any) -> Any:
    return value


def _converter(hint: Any) -> Convert:
    """How one field's Avro value becomes the typed value."""
    if dataclasses.is_dataclass(hint):
        return lambda value: _build(hint, value)  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = _converter(typing.get_args(hint)[0])
        return lambda value: tuple(item(v) for v in value)
    if origin in (types.UnionType, typing.Union):
        inner = _converter(next(a for a in typing.get_args(hint) if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    return _same


@cache
def _plan(cls: type) -> tuple[tuple[str, Convert], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def _build(cls: type, body: Mapping[str, Any]) -> Any:
    return cls(**{name: convert(body[name]) for name, convert in _plan(cls) if name in body})


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_dump(v) for v in value]
    return value


def from_avro(name: str, body: Mapping[str, Any]) -> Message:
    """The typed command or event of a record; KeyError for a name without a type."""
    return typing.cast(Message, _build(TYPES[name], body))


def command_from_avro(name: str, body: Mapping[str, Any]) -> Command:
    """The typed command of a record; KeyError for a name that is no command."""
    return typing.cast(Command, _build(commands.TYPES[name], body))


def event_from_avro(name: str, body: Mapping[str, Any]) -> Event:
    """The typed event of a record; KeyError for a name that is no event."""
    return typing.cast(Event, _build(events.TYPES[name], body))


def as_type(cls: type[T], body: Mapping[str, Any]) -> T:
    """The record `body` as `cls`, for a caller that knows the record's type already (an
    agent that read the record's name)."""
    return typing.cast(T, _build(cls, body))


def to_avro(message: Message) -> tuple[str, dict[str, Any]]:
    """The record name and body of a typed command or event, as its schema writes it."""
    return type(message).__name__, typing.cast(dict[str, Any], _dump(message))
