"""`Prefer: respond-async` on a send: 202 once the message is durable on the log, before it
is readable; it is delivered as any other, and the sender learns of it from its mailbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.api_client import b64, code_of, new_party, relate
from tests.integration.stack import Stack
from tests.integration.test_mailbox_api import _mailbox_until

pytestmark = pytest.mark.integration

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


def _kinds(entries: list[dict[str, Any]], kind: str, message_id: str) -> int:
    return sum(1 for e in entries if e["type"] == kind and message_id in str(e["payload"]))


async def test_an_async_send_is_delivered_once_and_the_sender_hears_of_it(
    http: httpx.AsyncClient,
) -> None:
    sender, recipient = await new_party(http), await new_party(http)
    await relate(http, sender, recipient)
    body = {
        "recipients": [{"address": recipient.address, "encryptedKey": b64(b"k")}],
        "body": b64(b"sealed for the recipient"),
    }
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}

    sent = await http.post(
        "/api/v2/Messages", json=body, headers={**sender.headers, **ASYNC, **key}
    )
    assert sent.status_code == 202, sent.text
    assert sent.headers["Preference-Applied"] == "respond-async"
    message_id = sent.json()["result"]["id"]
    # The same keyed request again: the same message, not a second one.
    again = await http.post(
        "/api/v2/Messages", json=body, headers={**sender.headers, **ASYNC, **key}
    )
    assert again.status_code in (201, 202) and again.json()["result"]["id"] == message_id

    received = await _mailbox_until(
        http, recipient, lambda es: _kinds(es, "MessageReceived", message_id) >= 1
    )
    assert _kinds(received, "MessageReceived", message_id) == 1
    own = await _mailbox_until(http, sender, lambda es: _kinds(es, "MessageSent", message_id) >= 1)
    assert _kinds(own, "MessageSent", message_id) == 1
    read = await http.get(f"/api/v2/Messages/{message_id}", headers=recipient.headers)
    assert read.status_code == 200 and read.json()["result"]["createdBy"] == sender.address


async def test_an_async_send_is_checked_as_any_send(http: httpx.AsyncClient) -> None:
    sender, stranger = await new_party(http), await new_party(http)
    body = {
        "recipients": [{"address": stranger.address, "encryptedKey": b64(b"k")}],
        "body": b64(b"x"),
    }
    refused = await http.post("/api/v2/Messages", json=body, headers={**sender.headers, **ASYNC})
    assert refused.status_code == 400 and "Preference-Applied" not in refused.headers
    assert code_of(refused)[1].startswith("error.platform")
    # Without the preference (or with another one) the answer waits for the projection.
    await relate(http, sender, stranger)
    plain = await http.post(
        "/api/v2/Messages", json=body, headers={**sender.headers, "Prefer": "return=minimal"}
    )
    assert plain.status_code == 201, plain.text
    read = await http.get(
        f"/api/v2/Messages/{plain.json()['result']['id']}", headers=sender.headers
    )
    assert read.status_code == 200  # read-your-writes, as before


async def test_a_read_with_prefer_wait_reads_an_async_send_as_soon_as_it_is_written(
    http: httpx.AsyncClient,
) -> None:
    sender, recipient = await new_party(http), await new_party(http)
    await relate(http, sender, recipient)
    body = {
        "recipients": [{"address": recipient.address, "encryptedKey": b64(b"k")}],
        "body": b64(b"read me back"),
    }
    sent = await http.post("/api/v2/Messages", json=body, headers={**sender.headers, **ASYNC})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["result"]["id"]
    # At once after the 202 the message may not be written yet; `wait` covers that gap for
    # the sender and the recipient alike.
    for party in (sender, recipient):
        read = await http.get(
            f"/api/v2/Messages/{message_id}", headers={**party.headers, "Prefer": "wait=5"}
        )
        assert read.status_code == 200, read.text
        assert read.json()["result"]["createdBy"] == sender.address

    # A message nobody wrote is 404 once the wait is over; an overlong wait is refused.
    missing = "MSG" + "0" * 17
    gone = await http.get(
        f"/api/v2/Messages/{missing}", headers={**sender.headers, "Prefer": "wait=1"}
    )
    assert gone.status_code == 404
    for bad in ("wait=11", "wait=-1", "wait=soon"):
        refused = await http.get(
            f"/api/v2/Messages/{message_id}", headers={**sender.headers, "Prefer": bad}
        )
        assert refused.status_code == 400, bad
        assert code_of(refused)[1] == "error.platform.validation.invalidPreference"
