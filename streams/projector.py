"""The projection of the event log: each event written to the read models, then its mailbox
entries sent, then (for a reply) the answer forwarded to the API.

The faust agent in streams/app.py hands over its gap-free records; everything else is
here, with its collaborators passed in, so that it runs without a worker.

Per poll: the records the stream has ready are projected in one pass (`project_batch`):
every event's writes sent at once (as unlogged batches) and awaited together, then every
mailbox entry of the batch produced and its acknowledgement awaited together, then the
replies forwarded, then the batch acked to faust (streams/faust_fixes.py
`GapFree.batches`). So a 201 still means the event is readable and its entries durable,
and a record counts as processed (its offset may be committed) only after both. The
writes are idempotent and carry their event's version as their timestamp, so the order
they land in does not matter.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterable, Awaitable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import faust

from backbone.deletion_policy import is_anonymous
from backbone.deletion_policy import mailbox_entries as deletion_entries
from domain.mailbox_router import entries_for
from store.envelopes import EnvelopeCodec, Opened
from store.retrying import until_done
from streams.deciding import open_waiting_for_key, wait_for_key
from streams.faust_fixes import GapFree
from streams.metrics import PROJECTION_LAG, PROJECTION_RETRIES, age
from streams.readmodels import Projection
from streams.sending import send_durably
from streams.writes import Write, grouped, write_all

# Records projected in one pass at most: a burst larger than this goes in several.
BATCH = 256

log = logging.getLogger("backbone.streams")


class Projections(Protocol):
    """Where an event is written: the projection on the active keyspace
    (streams/keyspace_writers.py `ActiveProjection`)."""

    def writing(self) -> AbstractAsyncContextManager[Projection]: ...


@dataclass(frozen=True)
class Projector:
    envelopes: EnvelopeCodec
    replies: faust.TopicT
    mailbox_entries: faust.TopicT

    async def run(
        self,
        records: AsyncIterable[tuple[bytes | None, bytes | None]],
        projections: Projections,
    ) -> None:
        """Projects every record of the events topic, in order, until the stream ends."""
        if isinstance(records, GapFree):
            async for batch in records.batches(BATCH):
                await self.project_batch(batch, projections)
            return
        async for _key, raw in records:
            if raw is None:
                continue
            event = await open_waiting_for_key(self.envelopes, raw)
            if event is None:
                continue
            async with projections.writing() as projection:
                await self.project(projection, event, raw)

    async def project_batch(
        self, records: list[tuple[bytes | None, bytes | None]], projections: Projections
    ) -> None:
        """Projects a batch of records (in log order) in one pass."""
        opened: list[tuple[Opened, bytes]] = []
        for _key, raw in records:
            if raw is None:
                continue
            event = await open_waiting_for_key(self.envelopes, raw)
            if event is not None:
                opened.append((event, raw))
        if not opened:
            return
        async with projections.writing() as projection:
            writes: list[Write] = []
            for event, _raw in opened:
                if event.name == "Reply":
                    writes += projection.reply_writes(event)
                else:
                    writes += projection.writes(event) or ()
            # As unlogged batches of partitions on the same replicas: fewer requests for
            # the driver and for Cassandra, each batch applied whole on its node.
            requests = grouped(projection.session, writes)
            await until_done(
                functools.partial(write_all, projection.session, requests),
                "read-model write failed",
                {"events": len(opened)},
                on_retry=PROJECTION_RETRIES.inc,
            )
            sends: list[Awaitable[None]] = []
            for event, _raw in opened:
                if event.name != "Reply":
                    sends += await self.mailbox_sends(event)
            await asyncio.gather(*sends)
        for event, raw in opened:
            if event.name == "Reply":
                await self.replies.send(key=event.envelope["correlation_id"].encode(), value=raw)
            else:
                PROJECTION_LAG.labels(event.name).observe(age(event))

    async def project(self, projection: Projection, event: Opened, raw: bytes) -> None:
        if event.name == "Reply":
            await until_done(
                functools.partial(projection.record_reply, event), "recording a reply failed"
            )
            await self.replies.send(key=event.envelope["correlation_id"].encode(), value=raw)
            return
        await apply_until_written(projection, event)
        await self.route_to_mailboxes(event)
        PROJECTION_LAG.labels(event.name).observe(age(event))

    async def route_to_mailboxes(self, event: Opened) -> None:
        # Each entry is sent and its delivery awaited before the event counts as projected
        # (and before its reply is forwarded): a 2xx then means the recipients' entries are
        # durable, and a failed send is retried here instead of being lost in the
        # producer's background.
        await asyncio.gather(*await self.mailbox_sends(event))

    async def mailbox_sends(self, event: Opened) -> list[Awaitable[None]]:
        """The durable sends of an event's mailbox entries, not yet awaited."""
        sends: list[Awaitable[None]] = []
        routed = entries_for(event.name, event.body) + deletion_entries(event.name, event.body)
        # A receipt for a message whose sender was deleted and anonymized has nobody to go to.
        routed = [entry for entry in routed if not is_anonymous(entry[0])]
        for recipient, event_type, payload in routed:
            key = self.envelopes.aggregate_key("identity", recipient)
            key_id = self.envelopes.identity_key_id(recipient)
            try:
                await wait_for_key(self.envelopes, key_id)
            except KeyError:
                log.error("no data key for a mailbox recipient; entry skipped")
                continue
            entry = {
                "recipient": recipient,
                "event_type": event_type,
                "payload_json": json.dumps(payload, separators=(",", ":")),
                "source_event_id": event.envelope["event_id"],
                "occurred_at": event.envelope["occurred_at"],
            }
            sealed = self.envelopes.seal(
                "MailboxEntry",
                entry,
                aggregate_key=key,
                correlation_id=event.envelope["correlation_id"],
                data_key_id=key_id,
                causation_id=event.envelope["event_id"],
            )
            sends.append(send_durably(self.mailbox_entries, key.encode(), sealed))
        return sends


async def apply_until_written(projection: Projection, event: Opened) -> None:
    # A read model that skipped an event would be wrong forever. Writes are idempotent.
    await until_done(
        lambda: projection.apply(event),
        "read-model write failed",
        {"event": event.name},
        on_retry=PROJECTION_RETRIES.inc,
    )
