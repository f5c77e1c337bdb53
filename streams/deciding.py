"""The loop around every pure decider: load state, decide, append events, keep state, answer.

The same steps for every aggregate type, so each agent in streams/app.py is a few lines and
each rule module stays free of Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import faust

from backbone import idempotency
from backbone.security.logcrypto import new_data_key
from domain.decision import UNKNOWN_COMMAND, Rejection
from schemas.commands import TYPES as COMMANDS
from schemas.commands import Command
from schemas.events import Event
from schemas.typed import command_from_avro, to_avro
from store.envelopes import EnvelopeCodec, Opened, derived_event_id
from streams.data_keys import KeyShredded
from streams.metrics import DECIDER_LAG, DECISIONS, age

log = logging.getLogger("backbone.streams")

# The refusals of the loop itself, not of a rule: a rule that raised, a data key that
# did not arrive (both in api/error_status.py's catalogue).
UNEXPECTED = "error.platform.unexpected"
UNAVAILABLE = "error.platform.serviceUnavailable"

# How long a record waits for its data key to reach this worker's copy of the key table
# (written on another worker) before it is reported and skipped.
DATA_KEY_WAIT_S = 30.0
# How many recent command ids an aggregate remembers, to answer a redelivered command with
# its first outcome instead of deciding it again.
REMEMBERED_COMMANDS = 32
# The Reply record's `status`: the API chooses the HTTP status from the command's name and
# the rejection's code (api/error_status.py), so a worker writes none. Records written
# before carry the status the worker chose then, which the API now ignores; the value is
# also what an aggregate remembers of an accepted command (only accepted ones are kept).
NO_STATUS = 0


# A record on the log: its schema's name and its body.
Record = tuple[str, dict[str, Any]]


class State(Protocol):
    version: int

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Decider:
    """An aggregate type as its agent runs it: where its state is kept, and its rules.

    `decide(state, command, now)` takes a typed command (schemas/commands.py) and returns
    typed events (schemas/events.py) or a rejection; `evolve(state, event)` returns the
    next state. The loop converts between the log's records and the types at the worker's
    edge (schemas/typed.py), so the rules never see a record's dict.
    """

    name: str
    table: Any  # the faust table of this aggregate type's state
    # The state's type is the aggregate's own (a State): Any here, so that one loop runs them.
    load: Callable[[dict[str, Any] | None], Any]
    decide: Callable[[Any, Command, datetime], Sequence[Event] | Rejection]
    evolve: Callable[[Any, Event], Any]
    sealed_for: Callable[[Any, Opened], str]  # whose data key seals the events


KeyLoader = Callable[[str], Awaitable[bool]]
_key_loaders: list[KeyLoader] = []


def set_key_loader(load: KeyLoader) -> None:
    """Where a worker looks for a data key its global table does not (yet) hold."""
    _key_loaders[:] = [load]


async def _try_load(key_id: str) -> bool:
    for load in _key_loaders:
        try:
            if await load(key_id):
                return True
        except KeyShredded:
            raise  # issue 22: gone for good, not away
        except Exception as exc:  # Cassandra away: keep waiting, as for the table
            log.warning("loading a data key failed", extra={"error": type(exc).__name__})
    return False


async def open_waiting_for_key(envelopes: EnvelopeCodec, raw: bytes) -> Opened | None:
    deadline = time.monotonic() + DATA_KEY_WAIT_S
    next_load = 0.0
    while True:
        try:
            return envelopes.open(raw)
        except KeyError as missing:
            key_id = str(missing.args[0]) if missing.args else ""
            if time.monotonic() >= next_load:
                next_load = time.monotonic() + 1.0
                try:
                    if await _try_load(key_id):
                        continue
                except KeyShredded:
                    return None  # a deleted identity's record (issue 22): it stays unread
            if time.monotonic() > deadline:
                log.error("no data key for a record; skipped", extra={"key_id": key_id})
                return None
            await asyncio.sleep(0.05)


async def wait_for_key(envelopes: EnvelopeCodec, key_id: str) -> None:
    deadline = time.monotonic() + DATA_KEY_WAIT_S
    next_load = 0.0
    while not envelopes.has_key(key_id):
        if time.monotonic() >= next_load:
            next_load = time.monotonic() + 1.0
            if await _try_load(key_id):
                continue
        if time.monotonic() > deadline:
            raise KeyError(key_id)
        await asyncio.sleep(0.05)


async def _send_acked(topic: faust.TopicT, key: str, value: bytes) -> None:
    # Waiting for the broker's ack before the table write makes the order on a crash
    # "events without state" (the command is decided again and re-emits the same events, which
    # the projection absorbs), never "state without events" (events lost).
    pending = await topic.send(key=key.encode(), value=value)
    await pending


@dataclass
class Runtime:
    envelopes: EnvelopeCodec
    events: faust.TopicT
    replies: faust.TopicT
    remember_data_key: Callable[[str, bytes], Awaitable[None]]

    def accepted(self, correlation_id: str) -> bytes:
        return self.envelopes.reply(correlation_id, NO_STATUS)

    def refused(self, correlation_id: str, rejection: Rejection) -> bytes:
        return self.envelopes.reply(correlation_id, NO_STATUS, rejection.code, rejection.message)

    async def refuse(self, correlation_id: str, rejection: Rejection) -> None:
        """Answer a command that appends nothing: on the replies topic, as nothing on the
        events partition has to reach the projection first."""
        await self.replies.send(
            key=correlation_id.encode(), value=self.refused(correlation_id, rejection)
        )

    async def decide(
        self, spec: Decider, agg: str, cmd: Opened, *, reply: bool = True
    ) -> list[Record] | None:
        """Decide one command. Returns the events (maybe none), or None when it was rejected
        (the rejection is answered here, whatever `reply` says)."""
        corr = cmd.envelope["correlation_id"]
        stored: dict[str, Any] = spec.table.get(agg) or {}
        handled: dict[str, int] = dict(stored.get("handled", {}))
        DECIDER_LAG.labels(cmd.name).observe(age(cmd))
        if corr in handled:  # redelivered after a crash: its events are on the log already
            if reply:
                await _send_acked(self.events, agg, self.accepted(corr))
            DECISIONS.labels(spec.name, cmd.name, "redelivered").inc()
            return []
        state = spec.load(stored or None)
        outcome: Sequence[Event] | Rejection
        if idempotency.reuses_key(corr, list(handled)):
            # The same Idempotency-Key with another body, both sent before the API could
            # see the first one's record: the second is refused, not applied.
            outcome = Rejection(
                idempotency.KEY_REUSED, "this Idempotency-Key was used with another body"
            )
        elif cmd.name not in COMMANDS:  # a record no command schema names: not a rule's
            outcome = Rejection(UNKNOWN_COMMAND, f"unknown command {cmd.name}")
        else:
            try:
                command = command_from_avro(cmd.name, cmd.body)
                outcome = spec.decide(state, command, datetime.now(UTC))
            except Exception:
                log.exception("decider failed", extra={"command": cmd.name})
                outcome = Rejection(UNEXPECTED, "the command could not be decided")
        if isinstance(outcome, Rejection):
            DECISIONS.labels(spec.name, cmd.name, "rejected").inc()
            await self.refuse(corr, outcome)
            return None
        try:
            key_id = await self._data_key_for(spec.sealed_for(state, cmd), cmd.name)
        except KeyError:
            # Not fatal for the agent (an exception here would stop it for good): this
            # command is answered 503, the next ones go on.
            log.error("no data key for a command; refused", extra={"command": cmd.name})
            await self.refuse(corr, Rejection(UNAVAILABLE, "try again shortly"))
            return None
        records = [to_avro(event) for event in outcome]
        for n, (event, (name, body)) in enumerate(zip(outcome, records, strict=True)):
            state = spec.evolve(state, event)
            sealed = self.envelopes.seal(
                name,
                body,
                aggregate_key=agg,
                correlation_id=corr,
                data_key_id=key_id,
                aggregate_version=state.version,
                causation_id=cmd.envelope["event_id"],
                event_id=derived_event_id(cmd.envelope["event_id"], n),
            )
            await _send_acked(self.events, agg, sealed)
        handled[corr] = NO_STATUS
        remembered = dict(list(handled.items())[-REMEMBERED_COMMANDS:])
        spec.table[agg] = {**state.to_dict(), "handled": remembered}
        if reply:
            # The reply follows the events on the same partition, so the projector forwards it
            # only after it has written them: a client that got 2xx reads its own write.
            await self.events.send(key=agg.encode(), value=self.accepted(corr))
        DECISIONS.labels(spec.name, cmd.name, "accepted").inc()
        return records

    async def _data_key_for(self, address: str, command: str) -> str:
        key_id = self.envelopes.identity_key_id(address)
        if command == "CreateIdentity" and not self.envelopes.has_key(key_id):
            await self.remember_data_key(key_id, new_data_key())
        await wait_for_key(self.envelopes, key_id)
        return key_id

    async def forward(self, topic: faust.TopicT, key: str, command: Command, cause: Opened) -> None:
        """A command to another aggregate, as the next step of the same request."""
        name, body = to_avro(command)
        sealed = self.envelopes.seal(
            name,
            body,
            aggregate_key=key,
            correlation_id=cause.envelope["correlation_id"],
            causation_id=cause.envelope["event_id"],
            event_id=derived_event_id(f"{cause.envelope['event_id']}/forward", 0),
        )
        await _send_acked(topic, key, sealed)
