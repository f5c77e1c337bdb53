"""Messages and mailbox entries leave the read models when their retention ends (TTL)."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from backbone.security.logcrypto import new_data_key
from store.envelopes import EnvelopeCodec
from streams.mailbox_sequencer import Entry, Sequencer
from streams.readmodels import Projection, create_schema

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
RETENTION_S = 2


async def test_messages_and_mailbox_entries_expire_with_the_retention(
    cassandra_session: Any,
) -> None:
    create_schema(cassandra_session, cassandra_session.keyspace)
    keys = {"dk": new_data_key()}
    codec = EnvelopeCodec(base64.b64encode(os.urandom(32)).decode(), lambda k: keys[k])
    sent = {
        "message_id": "MSGretention000000001",
        "sender": "did:e:x:dids:s",
        "sender_device": "DVC",
        "body": b"c",
        "attachments": [],
        "recipients": [{"address": "did:e:x:dids:r", "encrypted_key": b"k"}],
        "created_at": NOW,
    }
    raw = codec.seal(
        "MessageSent",
        sent,
        aggregate_key="m",
        correlation_id="c",
        data_key_id="dk",
        aggregate_version=1,
    )
    await Projection(cassandra_session, RETENTION_S).apply(codec.open(raw))
    sequencer = Sequencer(cassandra_session, RETENTION_S)
    done = await sequencer.sequence(
        # Retention counts from the entry's time: an entry made now (NOW is the module's
        # import, which may be more than the 2 s ago).
        [Entry(0, "did:e:x:dids:r", "MessageReceived", "{}", "source-1", datetime.now(UTC))]
    )
    assert [(d.first, d.last) for d in done] == [(1, 1)]

    def present() -> list[bool]:
        q = cassandra_session.execute
        return [
            q("SELECT id FROM messages WHERE id = %s", (sent["message_id"],)).one() is not None,
            q(
                "SELECT address FROM message_recipients WHERE message_id = %s",
                (sent["message_id"],),
            ).one()
            is not None,
            q("SELECT idx FROM mailbox WHERE address = %s", ("did:e:x:dids:r",)).one() is not None,
        ]

    assert present() == [True, True, True]
    await asyncio.sleep(RETENTION_S + 1.5)
    assert present() == [False, False, False]
    # The index does not restart after old entries expired: the head outlives them.
    again = await Sequencer(cassandra_session, RETENTION_S).sequence(
        [Entry(1, "did:e:x:dids:r", "MessageReceived", "{}", "source-2", datetime.now(UTC))]
    )
    assert [(d.first, d.last) for d in again] == [(2, 2)]
