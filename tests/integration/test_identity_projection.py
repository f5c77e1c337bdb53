"""The identity read models in real Cassandra: projection is idempotent under redelivery."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backbone.security.logcrypto import new_data_key
from domain.decision import Rejection
from domain.identity_decider import IdentityState, decide, evolve
from schemas.typed import command_from_avro, to_avro
from store.envelopes import EnvelopeCodec, Opened
from streams.readmodels import Projection, create_schema

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ADDRESS = "did:e:localhost:dids:00112233445566778899"


def _events(codec: EnvelopeCodec) -> list[bytes]:
    """What the decider would put on the log: create, add a device, delete it."""
    agg = codec.aggregate_key("identity", ADDRESS)
    state, out = IdentityState(data_key_id="dk"), []
    commands: list[tuple[str, dict[str, Any]]] = [
        (
            "CreateIdentity",
            {
                "challenge_id": "CHL",
                "challenge_expires_at": NOW,
                "address": ADDRESS,
                "public_key": b"p" * 32,
                "client_id": "test",
                "identity_version": 1,
                "device_id": "DVC1",
                "username": "USR1",
                "password_hash": "h1",
                "requested_at": NOW,
            },
        ),
        (
            "AddDevice",
            {
                "challenge_id": "CHL2",
                "challenge_expires_at": NOW,
                "address": ADDRESS,
                "device_id": "DVC2",
                "username": "USR2",
                "password_hash": "h2",
                "created_by_device": "DVC1",
                "requested_at": NOW,
            },
        ),
        (
            "DeleteDevice",
            {
                "address": ADDRESS,
                "device_id": "DVC2",
                "deleted_by_device": "DVC1",
                "requested_at": NOW,
            },
        ),
    ]
    for name, cmd in commands:
        events = decide(state, command_from_avro(name, cmd), NOW - timedelta(minutes=1))
        assert not isinstance(events, Rejection)
        for event in events:
            state = evolve(state, event)
            event_name, body = to_avro(event)
            out.append(
                codec.seal(
                    event_name,
                    body,
                    aggregate_key=agg,
                    correlation_id="c",
                    data_key_id="dk",
                    aggregate_version=state.version,
                )
            )
    return out


def _snapshot(session: Any) -> dict[str, Any]:
    # Only this test's identity: the keyspace is shared with the other integration tests.
    def rows(query: str, *params: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in session.execute(query, params))

    return {
        "identities": rows("SELECT * FROM identities WHERE address = %s", ADDRESS),
        "devices": rows("SELECT * FROM devices WHERE address = %s", ADDRESS),
        "logins": [
            *rows("SELECT * FROM devices_by_username WHERE username = %s", "USR1"),
            *rows("SELECT * FROM devices_by_username WHERE username = %s", "USR2"),
        ],
    }


async def test_projection_is_idempotent_under_redelivery(cassandra_session: Any) -> None:
    create_schema(cassandra_session, cassandra_session.keyspace)
    keys = {"dk": new_data_key()}
    codec = EnvelopeCodec(base64.b64encode(os.urandom(32)).decode(), lambda k: keys[k])
    log = _events(codec)
    projection = Projection(cassandra_session)

    opened: list[Opened] = [codec.open(raw) for raw in log]
    for event in opened:
        assert await projection.apply(event)
    once = _snapshot(cassandra_session)
    assert [r[0] for r in once["identities"]] == [ADDRESS]
    assert [r[2] for r in once["logins"]] == ["DVC1"]  # the deleted device cannot log in
    deleted = {r[1]: r[3] for r in once["devices"]}
    assert deleted["DVC1"] is None and deleted["DVC2"] is not None

    # A crash after writing but before committing the offset: everything comes again,
    # and a stale event from the middle arrives after the newest one.
    for event in [*opened, opened[2]]:
        await projection.apply(event)
    assert _snapshot(cassandra_session) == once
