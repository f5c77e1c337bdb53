"""The message read models' projection, without Cassandra: what a recipient's view and a
sender's list are built from. A projection answers an event with its writes (statement and
values), so the rows can be read off them; a fake session hands back each statement's CQL
as the prepared statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.message_readmodels import MessageProjection

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RETENTION_S = 30 * 24 * 3600


class CqlSession:
    def prepare(self, cql: str) -> str:
        return cql


def _projection() -> MessageProjection:
    session: Any = CqlSession()
    return MessageProjection(session, RETENTION_S)


def _table(cql: str) -> str:
    words = cql.split()
    return words[2] if words[0] == "INSERT" else words[1]


def _rows(writes: list[Any]) -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for cql, values in writes:
        rows.setdefault(_table(cql), []).append(values)
    return rows


def _sent(sender: str, recipients: list[str]) -> dict[str, Any]:
    return {
        "message_id": "MSG1",
        "sender": sender,
        "sender_device": "DVC1",
        "body": b"ciphertext",
        "attachments": ["FIL1"],
        "created_at": NOW,
        "recipients": [{"address": a, "encrypted_key": f"key-{a}".encode()} for a in recipients],
    }


def test_a_sent_message_is_stored_once_with_a_wrapped_key_per_recipient() -> None:
    writes = _projection().writes("MessageSent", _sent("alice", ["bob", "carol"]), 7, NOW, NOW)
    assert writes is not None
    rows = _rows(writes)
    assert rows["messages"] == [
        ("MSG1", "alice", "DVC1", b"ciphertext", ["FIL1"], NOW, RETENTION_S, 7)
    ]
    assert sorted(rows["message_recipients"]) == [
        ("MSG1", "bob", b"key-bob", RETENTION_S, 7),
        ("MSG1", "carol", b"key-carol", RETENTION_S, 7),
    ]
    # Listed once for every party, the sender included.
    assert sorted(rows["messages_by_identity"]) == [
        ("alice", "MSG1", RETENTION_S, 7),
        ("bob", "MSG1", RETENTION_S, 7),
        ("carol", "MSG1", RETENTION_S, 7),
    ]


def test_a_message_to_oneself_is_listed_once() -> None:
    writes = _projection().writes("MessageSent", _sent("alice", ["alice"]), 1, NOW, NOW)
    assert writes is not None
    assert _rows(writes)["messages_by_identity"] == [("alice", "MSG1", RETENTION_S, 1)]


def test_a_late_projection_keeps_the_retention_left_and_an_expired_one_writes_nothing() -> None:
    projection = _projection()
    hour_old = projection.writes(
        "MessageSent", _sent("alice", ["bob"]), 1, NOW - timedelta(hours=1), NOW
    )
    assert hour_old is not None
    assert {values[-2] for _, values in hour_old} == {RETENTION_S - 3600}
    expired = projection.writes(
        "MessageSent", _sent("alice", ["bob"]), 1, NOW - timedelta(days=31), NOW
    )
    assert expired == []


def test_a_receipt_updates_only_that_recipients_row() -> None:
    body = {
        "message_id": "MSG1",
        "recipient": "bob",
        "recipient_device": "DVC2",
        "received_at": NOW,
    }
    writes = _projection().writes("MessageReceived", body, 3, NOW, NOW)
    assert writes is not None
    [(cql, values)] = writes
    assert _table(cql) == "message_recipients" and cql.startswith("UPDATE")
    assert values == (RETENTION_S, 3, NOW, "DVC2", "MSG1", "bob")


def test_an_acknowledgement_moves_the_devices_cursor_ordered_by_the_identitys_version() -> None:
    body = {"address": "bob", "device_id": "DVC2", "index": 41, "acknowledged_at": NOW}
    writes = _projection().writes("MailboxAcknowledged", body, 12, NOW, NOW)
    assert writes is not None
    [(cql, values)] = writes
    assert _table(cql) == "mailbox_cursors" and "USING TIMESTAMP" in cql
    assert values == ("bob", "DVC2", 41, NOW, 12)


def test_events_of_other_read_models_are_not_this_projections() -> None:
    assert _projection().writes("TokenCreated", {}, 1, NOW, NOW) is None
