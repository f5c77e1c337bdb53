"""The mailbox sequencer's wiring: how a mailbox-entries record becomes an `Entry`, how the
API processes are told that an identity's entries are numbered, and the consumer that
runs it (streams/mailbox_sequencer.py numbers, streams/sequencer_consumer.py consumes).

It runs on its own consumer, not as an agent: see streams/sequencer_consumer.py.
"""

from __future__ import annotations

import functools

import faust

from backbone.replay.pointer import ActiveKeyspace
from backbone.settings import BackboneSettings
from store.envelopes import EnvelopeCodec
from streams.deciding import open_waiting_for_key
from streams.keyspace_writers import ActiveSequencer
from streams.mailbox_sequencer import Entry, Sequenced
from streams.sequencer_consumer import SequencerConsumer


async def decode_entry(envelopes: EnvelopeCodec, offset: int, raw: bytes) -> Entry | None:
    """The entry a sealed MailboxEntry record holds; None when it cannot be opened."""
    opened = await open_waiting_for_key(envelopes, raw)
    if opened is None:
        return None
    b = opened.body
    return Entry(
        offset,
        b["recipient"],
        b["event_type"],
        b["payload_json"],
        b["source_event_id"],
        b["occurred_at"],
    )


async def notify_sequenced(
    envelopes: EnvelopeCodec, sequenced_topic: faust.TopicT, done: Sequenced
) -> None:
    """Tells the API processes, whose open mailbox streams wait for exactly this, the last
    number given to an identity's entries."""
    key = envelopes.aggregate_key("identity", done.address).encode()
    await sequenced_topic.send(key=key, value=str(done.last).encode())


async def run_mailbox_sequencer(
    settings: BackboneSettings,
    entries_topic: str,
    sequenced_topic: faust.TopicT,
    envelopes: EnvelopeCodec,
    keyspace: ActiveKeyspace,
) -> None:
    """Sequences until cancelled."""
    consumer = SequencerConsumer(
        settings.cluster.kafka_bootstrap,
        entries_topic,
        f"{settings.app_id}-mailbox-sequencer",
        ActiveSequencer(keyspace, settings.retention_s),
        functools.partial(decode_entry, envelopes),
        functools.partial(notify_sequenced, envelopes, sequenced_topic),
        settings.worker_session_timeout_s,
    )
    await consumer.run()
