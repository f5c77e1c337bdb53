"""The Connector's webhooks: outbox, signatures and the dispatcher, against a real local
HTTP receiver. Time is a fake clock and backoff a fixed minute, so retries cost no waiting."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.webhooks import (
    BASE_BACKOFF_S,
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    Outbox,
    WebhookDispatcher,
    WebhookTarget,
    backoff_delay,
    parse_targets,
    signature,
    verify_signature,
)

BACKOFF_S = 60.0
SECRET = b"webhook-secret-do-not-log"


@dataclass(frozen=True)
class Request:
    method: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # loop time of arrival

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A small HTTP/1.1 server. Each path answers with the statuses scripted for it, then
    200; paths in `hang` never answer. Requests are recorded by path (query left off)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    requests: dict[str, list[Request]] = field(default_factory=lambda: defaultdict(list))
    base: str = ""
    _server: asyncio.Server | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url(self, path: str) -> str:
        return self.base + path

    def ids(self, path: str) -> list[str]:
        return [r.headers["x-connector-event-id"] for r in self.requests[path]]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in filter(None, head[1:]):
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            path = target.split("?", 1)[0]
            at = asyncio.get_running_loop().time()
            self.requests[path].append(Request(method, headers, body, at))
            if path in self.hang:
                await self._released.wait()
                return
            script = self.script.get(path)
            status = script.pop(0) if script else 200
            writer.write(
                f"HTTP/1.1 {status} Scripted\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "connector.sqlite", backoff=lambda attempts: BACKOFF_S)
    yield box
    box.close()


def _target(receiver: Receiver, path: str, *events: str) -> WebhookTarget:
    return WebhookTarget(receiver.url(path), SECRET, frozenset(events), name=path)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody"


def test_signature_verifies_and_a_tampered_body_or_stale_timestamp_does_not() -> None:
    body, timestamp, now = b'{"id":"e1","data":{"amount":10}}', "1700000000", 1_700_000_000.0
    header = signature(SECRET, timestamp, body)
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"
    assert verify_signature(SECRET, timestamp, body, header, now)
    assert verify_signature(SECRET, timestamp, body, header, now + 299)
    assert not verify_signature(SECRET, timestamp, body.replace(b"10", b"99"), header, now)
    assert not verify_signature(b"another secret", timestamp, body, header, now)
    assert not verify_signature(SECRET, "1700000001", body, header, now)  # a swapped timestamp
    assert not verify_signature(SECRET, timestamp, body, header, now + 301)  # a replay
    assert not verify_signature(SECRET, timestamp, body, header, now - 301)  # from the future
    assert verify_signature(SECRET, timestamp, body, header, now + 500, tolerance_s=600)
    assert not verify_signature(SECRET, timestamp, body, header.upper(), now)
    assert not verify_signature(SECRET, timestamp, body, "sha256=ü", now)
    assert not verify_signature(SECRET, "-1700000000", body, header, now)
    assert not verify_signature(SECRET, "", body, header, now)


async def test_a_delivery_is_a_signed_json_post_with_the_event_headers(
    receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    clock = Clock()
    target = _target(receiver, "/hook")
    payload = {"messageId": "MSG1", "content": {"text": "Grüße"}}
    event_id = outbox.enqueue("MessageReceived", payload, [target])
    assert len(event_id) == 32 and int(event_id, 16) >= 0
    assert outbox.pending_count() == 1

    dispatcher = WebhookDispatcher(outbox, [target], http, clock=clock)
    assert await dispatcher.deliver_due() == 1
    assert outbox.pending_count() == 0
    assert await dispatcher.deliver_due() == 0  # delivered means done

    [request] = receiver.requests["/hook"]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-connector-event-id"] == event_id
    assert request.headers["x-connector-event-type"] == "MessageReceived"
    assert request.headers["x-connector-timestamp"] == "1700000000"
    assert verify_signature(
        SECRET, "1700000000", request.body, request.headers["x-connector-signature"], clock.now
    )
    event = request.event
    assert set(event) == {"id", "type", "createdAt", "data"}
    assert (event["id"], event["type"], event["data"]) == (event_id, "MessageReceived", payload)
    assert datetime.fromisoformat(event["createdAt"]).tzinfo is not None


async def test_a_target_gets_only_the_event_types_it_filters_for(
    receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    messages = _target(receiver, "/messages", "MessageReceived")
    relationships = _target(receiver, "/rel", "RelationshipRequested", "RelationshipChanged")
    everything = _target(receiver, "/all")
    targets = [messages, relationships, everything]
    for kind in ("MessageReceived", "RelationshipRequested", "RelationshipChanged"):
        outbox.enqueue(kind, {"kind": kind}, targets)
    assert outbox.pending_count() == 6

    assert await WebhookDispatcher(outbox, targets, http, clock=Clock()).deliver_due() == 6

    def kinds(path: str) -> list[str]:
        return [r.headers["x-connector-event-type"] for r in receiver.requests[path]]

    assert kinds("/messages") == ["MessageReceived"]
    assert kinds("/rel") == ["RelationshipRequested", "RelationshipChanged"]
    assert kinds("/all") == ["MessageReceived", "RelationshipRequested", "RelationshipChanged"]
    assert len(set(receiver.ids("/all")) | set(receiver.ids("/rel"))) == 3  # one id per event


async def test_a_receiver_failing_twice_gets_the_same_event_three_times_then_it_is_delivered(
    receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    clock = Clock()
    target = _target(receiver, "/flaky")
    receiver.script["/flaky"] = [500, 500]
    event_id = outbox.enqueue("RelationshipChanged", {"status": "Active"}, [target])
    dispatcher = WebhookDispatcher(outbox, [target], http, clock=clock)

    assert await dispatcher.deliver_due() == 0
    assert outbox.due(clock.now + BACKOFF_S - 1) == []  # backing off
    assert await dispatcher.deliver_due() == 0
    assert len(receiver.requests["/flaky"]) == 1  # not retried before its time

    clock.now += BACKOFF_S
    assert await dispatcher.deliver_due() == 0
    clock.now += BACKOFF_S
    [waiting] = outbox.due(clock.now)
    assert waiting.attempts == 2 and waiting.event_id == event_id
    assert await dispatcher.deliver_due() == 1

    assert receiver.ids("/flaky") == [event_id] * 3
    assert [r.event["id"] for r in receiver.requests["/flaky"]] == [event_id] * 3
    assert outbox.pending_count() == 0
    clock.now += 10 * BACKOFF_S
    assert await dispatcher.deliver_due() == 0
    assert len(receiver.requests["/flaky"]) == 3


@pytest.mark.parametrize("status", [302, 404, 503])
async def test_answers_other_than_2xx_are_failures(
    status: int, receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    clock = Clock()
    target = _target(receiver, "/hook")
    receiver.script["/hook"] = [status]
    outbox.enqueue("MessageReceived", {}, [target])
    assert await WebhookDispatcher(outbox, [target], http, clock=clock).deliver_due() == 0
    assert outbox.pending_count() == 1
    [retry] = outbox.due(clock.now + BACKOFF_S)
    assert retry.attempts == 1
    assert receiver.requests["/elsewhere"] == []  # redirects are not followed


async def test_a_failing_target_does_not_block_the_others(
    receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    clock = Clock()
    receiver.script["/down"] = [500] * 10
    receiver.hang.add("/hang")
    down, hanging, ok = (_target(receiver, p) for p in ("/down", "/hang", "/ok"))
    refused = WebhookTarget(_closed_port_url(), SECRET, name="refused")
    targets = [hanging, down, refused, ok]
    ids = [outbox.enqueue("MessageReceived", {"n": n}, targets) for n in range(3)]

    dispatcher = WebhookDispatcher(outbox, targets, http, clock=clock, timeout_s=0.5)
    assert await dispatcher.deliver_due() == 3
    assert receiver.ids("/ok") == ids
    # Served side by side: ok did not wait for the hanging target's timeout.
    assert receiver.requests["/ok"][0].at - receiver.requests["/hang"][0].at < 0.4
    assert receiver.ids("/down") == ids[:1]
    assert receiver.ids("/hang") == ids[:1]
    assert outbox.pending_by_target() == {down.url: 3, hanging.url: 3, refused.url: 3}
    for url in (down.url, hanging.url, refused.url):
        retry = outbox.due(clock.now + BACKOFF_S, target_url=url)
        assert [(d.event_id, d.attempts) for d in retry] == [(ids[0], 1), (ids[1], 0), (ids[2], 0)]


async def test_events_reach_a_target_in_order_also_across_retries(
    receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    clock = Clock()
    receiver.script["/a"] = [500]
    a, b = _target(receiver, "/a"), _target(receiver, "/b")
    ids = [outbox.enqueue("MessageReceived", {"n": n}, [a, b]) for n in range(3)]
    dispatcher = WebhookDispatcher(outbox, [a, b], http, clock=clock)

    assert await dispatcher.deliver_due() == 3  # all to b; a stops at its first failure
    assert receiver.ids("/b") == ids
    assert receiver.ids("/a") == ids[:1]
    # The later events to a are due, but wait behind the first one.
    assert outbox.due(clock.now, target_url=a.url) == []

    clock.now += BACKOFF_S
    assert [d.event_id for d in outbox.due(clock.now, target_url=a.url)] == ids
    assert await dispatcher.deliver_due() == 3
    assert receiver.ids("/a") == [ids[0], *ids]
    assert [r.event["data"]["n"] for r in receiver.requests["/a"]] == [0, 0, 1, 2]


async def test_the_outbox_survives_a_restart(
    receiver: Receiver, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = _target(receiver, "/hook")
    before = Outbox(tmp_path / "connector.sqlite")
    ids = [before.enqueue("MessageReceived", {"n": n}, [target]) for n in range(2)]
    before.close()

    after = Outbox(tmp_path / "connector.sqlite")
    try:
        assert after.pending_count() == 2
        assert await WebhookDispatcher(after, [target], http, clock=Clock()).deliver_due() == 2
        assert receiver.ids("/hook") == ids
        assert after.pending_count() == 0
    finally:
        after.close()


async def test_enqueue_through_the_callers_connection_commits_and_rolls_back_with_it(
    receiver: Receiver, tmp_path: Path, outbox: Outbox
) -> None:
    targets = [_target(receiver, "/a"), _target(receiver, "/b")]
    db = sqlite3.connect(tmp_path / "connector.sqlite", isolation_level=None)
    try:
        db.execute("CREATE TABLE messages (id TEXT PRIMARY KEY)")

        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO messages VALUES ('m1')")
        outbox.enqueue("MessageReceived", {"id": "m1"}, targets, conn=db)
        assert db.in_transaction  # enqueue neither committed nor ended it
        assert outbox.pending_count() == 0  # nothing visible before the caller commits
        db.execute("ROLLBACK")
        assert outbox.pending_count() == 0
        assert outbox.due(Clock().now) == []

        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO messages VALUES ('m1')")
        event_id = outbox.enqueue("MessageReceived", {"id": "m1"}, targets, conn=db)
        db.execute("COMMIT")
        assert outbox.pending_count() == 2
        assert {d.event_id for d in outbox.due(Clock().now)} == {event_id}
    finally:
        db.close()


def test_enqueue_refuses_a_connection_to_another_database(tmp_path: Path, outbox: Outbox) -> None:
    other = sqlite3.connect(tmp_path / "other.sqlite")
    try:
        target = WebhookTarget("http://127.0.0.1:9/x", SECRET)
        with pytest.raises(ValueError, match="database"):
            outbox.enqueue("MessageReceived", {}, [target], conn=other)
    finally:
        other.close()


async def test_a_delivery_is_given_up_after_max_attempts_and_logged_without_secrets(
    receiver: Receiver,
    http: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "connector.sqlite", max_attempts=3, backoff=lambda n: BACKOFF_S)
    receiver.script["/a"] = [500, 500, 500]
    target = WebhookTarget(receiver.url("/a?token=url-credential"), SECRET, name="erp")
    first = box.enqueue("MessageReceived", {"text": "confidential-payload"}, [target])
    second = box.enqueue("MessageReceived", {"text": "next"}, [target])
    dispatcher = WebhookDispatcher(box, [target], http, clock=clock)
    try:
        with caplog.at_level(logging.DEBUG, logger="connector.webhooks"):
            for _ in range(3):
                assert await dispatcher.deliver_due() == 0
                clock.now += BACKOFF_S
            assert box.pending_count() == 1  # the first is given up
            assert await dispatcher.deliver_due() == 1  # and no longer holds up the second
            clock.now += 100 * BACKOFF_S
            assert await dispatcher.deliver_due() == 0
        assert receiver.ids("/a") == [first, first, first, second]
        assert box.pending_count() == 0

        [given_up] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert given_up.getMessage() == "webhook delivery given up"
        assert (given_up.__dict__["event_id"], given_up.__dict__["attempts"]) == (first, 3)
        logged = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
        assert "HTTP 500" in logged
        for leak in (SECRET.decode(), "confidential-payload", "url-credential"):
            assert leak not in logged
    finally:
        box.close()


def test_backoff_doubles_with_jitter_up_to_a_cap(tmp_path: Path) -> None:
    for attempts in range(1, 20):
        ceiling = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** (attempts - 1))
        delays = {backoff_delay(attempts) for _ in range(50)}
        assert all(0.75 * ceiling <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    worst = sum(min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**n) for n in range(MAX_ATTEMPTS - 1))
    assert 3600 <= worst <= 3 * 3600  # a receiver gets hours, not days, to come back

    box = Outbox(tmp_path / "connector.sqlite")  # the real backoff by default
    try:
        box.enqueue("MessageReceived", {}, [WebhookTarget("http://127.0.0.1:9/x", SECRET)])
        [delivery] = box.due(0.0)
        box.failed(delivery.id, 1000.0, "HTTP 500")
        assert box.due(1000.0 + 0.74 * BASE_BACKOFF_S) == []
        assert [d.attempts for d in box.due(1000.0 + BASE_BACKOFF_S)] == [1]
    finally:
        box.close()


async def test_deliveries_to_a_target_no_longer_configured_stay_pending_with_one_warning(
    receiver: Receiver,
    http: httpx.AsyncClient,
    outbox: Outbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, new = _target(receiver, "/old"), _target(receiver, "/new")
    event_id = outbox.enqueue("MessageReceived", {}, [old, new])
    dispatcher = WebhookDispatcher(outbox, [new], http, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="connector.webhooks"):
        assert await dispatcher.deliver_due() == 1
        assert await dispatcher.deliver_due() == 0
    assert receiver.ids("/new") == [event_id]
    assert receiver.requests["/old"] == []
    assert outbox.pending_by_target() == {old.url: 1}
    warnings = [r for r in caplog.records if "no longer configured" in r.getMessage()]
    assert len(warnings) == 1


async def test_run_delivers_at_once_when_woken_and_stops_when_cancelled(
    receiver: Receiver, http: httpx.AsyncClient, outbox: Outbox
) -> None:
    target = _target(receiver, "/hook")
    dispatcher = WebhookDispatcher(outbox, [target], http, poll_interval_s=60)
    task = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.sleep(0.05)  # the first pass found nothing; now it waits a minute
        first = outbox.enqueue("MessageReceived", {}, [target])
        dispatcher.wake()
        await _within(2, lambda: receiver.ids("/hook") == [first])
        second = outbox.enqueue("MessageReceived", {}, [target])
        await asyncio.to_thread(dispatcher.wake)  # from a worker thread as well
        await _within(2, lambda: outbox.pending_count() == 0)
        assert receiver.ids("/hook") == [first, second]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def _within(seconds: float, condition: Callable[[], bool]) -> None:
    """Polls: the dispatcher runs in its own task and tells nobody when it is done."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {seconds} s")


def test_parse_targets_reads_urls_secrets_filters_and_names() -> None:
    raw = json.dumps(
        [
            {"url": "https://erp.example/hooks", "secret": "s1", "name": "erp"},
            {"url": "http://crm.local:8000/in", "secret": "s2", "events": ["MessageReceived"]},
        ]
    )
    erp, crm = parse_targets(raw)
    assert erp == WebhookTarget("https://erp.example/hooks", b"s1", frozenset(), "erp")
    assert crm == WebhookTarget("http://crm.local:8000/in", b"s2", frozenset({"MessageReceived"}))
    assert erp.wants("RelationshipChanged") and crm.wants("MessageReceived")
    assert not crm.wants("RelationshipChanged")
    assert parse_targets("") == parse_targets("  \n") == parse_targets("[]") == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"url": "https://x.example", "secret": "hunter2"}', "JSON list"),
        ('["https://x.example"]', r"\[0\] must be an object"),
        ('[{"secret": "hunter2"}]', "needs a url"),
        ('[{"url": "", "secret": "hunter2"}]', "needs a url"),
        ('[{"url": "ftp://x.example/in", "secret": "hunter2"}]', "http or https"),
        ('[{"url": "https://", "secret": "hunter2"}]', "http or https"),
        ('[{"url": "x.example/in", "secret": "hunter2"}]', "http or https"),
        ('[{"url": "https://x.example"}]', "non-empty secret"),
        ('[{"url": "https://x.example", "secret": ""}]', "non-empty secret"),
        ('[{"url": "https://x.example", "secret": 42}]', "non-empty secret"),
        ('[{"url": "https://x.example", "secret": "hunter2", "events": "Msg"}]', "events"),
        ('[{"url": "https://x.example", "secret": "hunter2", "events": [1]}]', "events"),
        ('[{"url": "https://x.example", "secret": "hunter2", "event": []}]', "unknown keys: event"),
        ('[{"url": "https://x.example", "secret": "hunter2", "name": 7}]', "name"),
        (
            '[{"url": "https://x.example", "secret": "a"}, {"url": "https://x.example",'
            ' "secret": "hunter2"}]',
            r"\[1\]: url https://x.example is listed twice",
        ),
    ],
)
def test_parse_targets_refuses_bad_input_with_a_clear_message(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_targets(raw)
    assert "hunter2" not in str(caught.value)


def test_the_repr_of_a_target_hides_its_secret() -> None:
    target = WebhookTarget(
        "https://erp.example/in?token=url-credential", b"hunter2", frozenset({"A"}), "erp"
    )
    for text in (repr(target), str(target), repr([target]), f"{target!r}"):
        assert "hunter2" not in text and "url-credential" not in text
        assert "secret=<redacted>" in text and "https://erp.example/in" in text
