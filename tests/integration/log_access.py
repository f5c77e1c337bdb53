"""Test-side access to the raw log: every record of a topic, and the codec an operator with
the master key would use (data keys unwrapped from the workers' key table)."""

from __future__ import annotations

import base64
import json
from typing import Any

from backbone.security.logcrypto import MasterKey
from store.envelopes import EnvelopeCodec
from store.topics import read_records
from tests.integration.stack import Stack


async def operator_codec(stack: Stack, session: Any = None) -> EnvelopeCodec:
    """Opens any record whose data key exists now (what a replay tool holds). With a
    Cassandra session, also the keys in its `data_keys` table: a key whose changelog write
    died with a SIGKILLed worker is only there."""
    master = MasterKey.from_base64(stack.master_key_b64)
    topic = f"{stack.cluster.topic_prefix}workers-data-keys-changelog"
    wrapped = {
        json.loads(k): json.loads(v)
        for k, v in await read_records(stack.cluster.kafka_bootstrap, topic)
        if k is not None and v is not None  # None: a deleted (shredded) key
    }
    if session is not None:
        for row in session.execute("SELECT key_id, wrapped FROM data_keys"):
            wrapped.setdefault(row.key_id, row.wrapped)
    keys = {kid: master.unwrap(base64.b64decode(w), kid) for kid, w in wrapped.items()}
    return EnvelopeCodec(stack.master_key_b64, lambda kid: keys[kid])
