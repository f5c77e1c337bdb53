"""What each decide agent does with one command, named and runnable without a worker.

An agent in streams/app.py hands its gap-free records to `handle_each` with one of these
steps: `Decide` for most aggregate types; `IdentitySteps` with the challenge gate and the
final step of a deletion in front; `RelationshipRequest` for the two agents a relationship
request passes through (domain/relationship_choreography.py says what each next command
carries, these send it).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust

from domain import challenge_decider, relationship_choreography
from domain.decision import Rejection
from schemas.commands import AddDevice, CreateIdentity, OpenRelationship, RequestRelationship
from schemas.typed import as_type
from store.envelopes import EnvelopeCodec, Opened
from streams.deciding import Decider, Runtime, open_waiting_for_key
from streams.deletion_wiring import forgot

Step = Callable[[str, Opened], Awaitable[None]]
Records = AsyncIterable[tuple[bytes | None, bytes | None]]

# The commands that prove a key with a challenge (domain/challenge_decider.py).
CHALLENGED = {"CreateIdentity": CreateIdentity, "AddDevice": AddDevice}


async def opened_commands(
    records: Records, envelopes: EnvelopeCodec
) -> AsyncIterator[tuple[str, Opened]]:
    """The (aggregate key, command) of each record that opens; tombstones, keyless records
    and records whose data key never comes are passed over."""
    async for key, raw in records:
        command = await open_waiting_for_key(envelopes, raw) if raw is not None else None
        if command is not None and key is not None:
            yield key.decode(), command


async def handle_each(records: Records, envelopes: EnvelopeCodec, step: Step) -> None:
    """An agent's loop: each command in turn, the next one once this one is handled."""
    async for key, command in opened_commands(records, envelopes):
        await step(key, command)


@dataclass(frozen=True)
class Decide:
    """The step of the token, file and message agents: forget a deleted identity, or decide."""

    runtime: Runtime
    spec: Decider

    async def __call__(self, key: str, command: Opened) -> None:
        if forgot(self.spec, key, command):
            return
        await self.runtime.decide(self.spec, key, command)


@dataclass(frozen=True)
class IdentitySteps:
    runtime: Runtime
    identities: Decider
    challenge_uses: Any  # the faust table: challenge key -> the request that used it
    identity_commands: faust.TopicT
    # The final step of an identity's deletion (streams/deletion_final.py).
    finish_deletion: Callable[[str, Opened], Awaitable[object]]

    async def __call__(self, key: str, command: Opened) -> None:
        if await self.gate(key, command):
            return
        if command.name == "FinishIdentityDeletion":
            await self.finish_deletion(key, command)
            return
        await self.runtime.decide(self.identities, key, command)

    async def gate(self, key: str, command: Opened) -> bool:
        """A command that proves a key with a challenge arrives under the challenge's key
        first: the gate lets it through once, on to the identity's key, and refuses it
        after. True when `command` was the gate's to handle."""
        body = command.body
        envelopes = self.runtime.envelopes
        if command.name not in CHALLENGED or key != envelopes.aggregate_key(
            "challenge", body["challenge_id"]
        ):
            return False
        corr = command.envelope["correlation_id"]
        challenged: CreateIdentity | AddDevice = as_type(CHALLENGED[command.name], body)
        outcome = challenge_decider.decide(
            self.challenge_uses.get(key), corr, challenged, datetime.now(UTC)
        )
        if isinstance(outcome, Rejection):
            await self.runtime.refuse(corr, outcome)
            return True
        self.challenge_uses[key] = outcome
        await self.runtime.forward(
            self.identity_commands,
            envelopes.aggregate_key("identity", challenged.address),
            challenged,
            command,
        )
        return True


@dataclass(frozen=True)
class RelationshipRequest:
    """A relationship request is allocated at the template first, then opened by the pair's
    decider, which answers the API; a refused opening gives the allocation back."""

    runtime: Runtime
    templates: Decider
    pairs: Decider
    template_commands: faust.TopicT
    relationship_commands: faust.TopicT

    async def at_template(self, key: str, command: Opened) -> None:
        """The template agent's step; the allocation of a request is not answered here."""
        if forgot(self.templates, key, command):
            return
        forward = command.name == "RequestRelationship"
        outcome = await self.runtime.decide(self.templates, key, command, reply=not forward)
        if forward and outcome is not None:
            owner = self.templates.load(self.templates.table.get(key)).owner
            request = as_type(RequestRelationship, command.body)
            pair, opening = relationship_choreography.opening(request, owner)
            await self.runtime.forward(
                self.relationship_commands,
                self.runtime.envelopes.aggregate_key("pair", pair),
                opening,
                command,
            )

    async def at_pair(self, key: str, command: Opened) -> None:
        """The relationship agent's step."""
        if forgot(self.pairs, key, command):
            return
        outcome = await self.runtime.decide(self.pairs, key, command)
        if command.name == "OpenRelationship" and outcome is None:
            release = relationship_choreography.release(as_type(OpenRelationship, command.body))
            await self.runtime.forward(
                self.template_commands,
                self.runtime.envelopes.aggregate_key("template", release.template_id),
                release,
                command,
            )
