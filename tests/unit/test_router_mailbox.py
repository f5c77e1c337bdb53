"""`/Mailbox` against a fake bus and read store: an identity pages through its own entries
after a cursor, and a device acknowledges no further than the mailbox's last entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from store.readmodels.mailbox import Cursor
from tests.unit.fake_api import NOW, FakeApi, error_code, running

INVALID = "error.platform.validation.invalidPropertyValue"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield from running()


def test_an_identity_pages_through_its_own_entries_after_a_cursor(api: FakeApi) -> None:
    me, other = api.party(), api.party()
    for n in range(1, 6):
        api.reads.mailbox.deliver(me.address, "MessageReceived", f'{{"n":{n}}}')
    api.reads.mailbox.deliver(other.address, "MessageReceived", '{"n":"theirs"}')

    page = api.client.get("/api/v1/Mailbox?since=1&limit=3", headers=me.headers).json()
    assert [(e["index"], e["payload"]) for e in page["result"]] == [
        (2, {"n": 2}),
        (3, {"n": 3}),
        (4, {"n": 4}),
    ]
    assert (page["since"], page["last"]) == (1, 4)
    rest = api.client.get("/api/v1/Mailbox?since=4", headers=me.headers).json()
    assert [e["index"] for e in rest["result"]] == [5]
    done = api.client.get("/api/v1/Mailbox?since=5", headers=me.headers).json()
    assert (done["result"], done["last"]) == ([], 5)
    theirs = api.client.get("/api/v1/Mailbox", headers=other.headers).json()["result"]
    assert [e["payload"] for e in theirs] == [{"n": "theirs"}]


def test_a_device_acknowledges_up_to_the_last_entry_and_no_further(api: FakeApi) -> None:
    me = api.party()
    api.reads.mailbox.deliver(me.address, "MessageReceived", "{}")
    api.reads.mailbox.deliver(me.address, "MessageReceived", "{}")

    def acknowledged(c: dict[str, Any]) -> None:
        api.reads.mailbox.device_cursors[c["address"]] = [Cursor(c["device_id"], c["index"], NOW)]

    api.bus.on("AcknowledgeMailbox", acknowledged)
    past = api.client.put("/api/v1/Mailbox/Cursor", json={"index": 3}, headers=me.headers)
    assert (past.status_code, error_code(past)) == (400, INVALID)
    assert api.bus.sent == []  # a cursor past the head would stick there: never sent
    put = api.client.put("/api/v1/Mailbox/Cursor", json={"index": 2}, headers=me.headers)
    assert put.status_code == 200, put.text
    assert put.json()["result"]["index"] == 2
    assert put.json()["result"]["devices"][0]["deviceId"] == me.device_id
    [command] = api.bus.named("AcknowledgeMailbox")
    assert (command["address"], command["device_id"]) == (me.address, me.device_id)


def test_another_identitys_cursors_are_not_shown(api: FakeApi) -> None:
    me, other = api.party(), api.party()
    api.reads.mailbox.device_cursors[other.address] = [Cursor(other.device_id, 7, NOW)]
    mine = api.client.get("/api/v1/Mailbox/Cursor", headers=me.headers).json()
    assert mine["result"] == {"index": 0, "devices": []}
