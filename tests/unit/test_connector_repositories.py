"""The Connector's repositories and unit of work, on a real SQLite file: a change and the
webhook events it announces commit together or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.repositories import LocalData, MessageRecord, RelationshipRecord
from connector.store import SqliteStore
from connector.webhooks import Outbox, WebhookTarget

ME = "did:e:localhost:dids:me"
PEER = "did:e:localhost:dids:peer"


class Data:
    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path)
        self.outbox = Outbox(path)
        self.woken = 0
        target = WebhookTarget("http://127.0.0.1:1/hook", b"secret")
        self.local = LocalData(self.store.database, ME, self.outbox, [target], self._wake)

    def _wake(self) -> None:
        self.woken += 1


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Data]:
    d = Data(tmp_path / "connector.sqlite")
    yield d
    d.outbox.close()
    d.store.close()


def _relationship(rid: str, status: str, updated_at: str) -> RelationshipRecord:
    return RelationshipRecord(
        rid,
        ME,
        PEER,
        "RLTaaaaaaaaaaaaaaaaa",
        "outgoing",
        status,
        "{}",
        b"sealed",
        "null",
        None,
        "2026-01-01T00:00:00",
        updated_at,
    )


def _message(mid: str, index: int) -> MessageRecord:
    return MessageRecord(mid, ME, "incoming", PEER, f'["{ME}"]', '"hi"', "[]", index, "t")


def test_a_change_and_its_event_commit_together(data: Data) -> None:
    with data.local.change() as work:
        work.messages.add(_message("MSG1", 1))
        work.announce("MessageReceived", {"id": "MSG1"})
    assert data.local.messages.known("MSG1")
    assert data.outbox.pending_count() == 1
    assert data.woken == 1


def test_a_failed_change_announces_nothing(data: Data) -> None:
    with pytest.raises(RuntimeError), data.local.change() as work:
        work.messages.add(_message("MSG1", 1))
        work.announce("MessageReceived", {"id": "MSG1"})
        raise RuntimeError("crash before commit")
    assert not data.local.messages.known("MSG1")
    assert data.outbox.pending_count() == 0
    assert data.woken == 0


def test_a_change_without_events_wakes_no_one(data: Data) -> None:
    data.local.relationships.add(_relationship("REL1", "Pending", "1"))
    with data.local.change() as work:
        work.relationships.set_status("REL1", "Active", None, "2")
    assert data.local.relationships.status("REL1") == ("Active", None)
    assert data.woken == 0


def test_the_latest_active_relationship_with_a_peer_is_found(data: Data) -> None:
    data.local.relationships.add(_relationship("REL1", "Active", "1"))
    data.local.relationships.add(_relationship("REL2", "Terminated", "2"))
    active = data.local.relationships.latest_with(PEER, active=True)
    latest = data.local.relationships.latest_with(PEER, active=False)
    assert active is not None and active.id == "REL1"
    assert latest is not None and latest.id == "REL2"
    assert data.local.relationships.latest_with("did:e:localhost:dids:x", active=False) is None


def test_message_pages_filter_by_peer_and_direction_in_arrival_order(data: Data) -> None:
    for index in (1, 2):
        data.local.messages.add(_message(f"MSG{index}", index))
    assert [m.id for m in data.local.messages.page(PEER, None, 10, 0)] == ["MSG1", "MSG2"]
    assert [m.id for m in data.local.messages.page(PEER, "outgoing", 10, 0)] == []
    assert [m.id for m in data.local.messages.page(None, None, 1, 1)] == ["MSG2"]
    assert data.local.messages.get("MSG3") is None
