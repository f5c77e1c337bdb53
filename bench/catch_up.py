"""Sync catch-up: how fast one client reads a long backlog of pending mailbox entries.

One fresh identity gets N pending entries, then a client reads all of them after the
index it last saw, two ways, each timed from the first request to the last entry:

- *paging*: `GET /api/v2/Mailbox?since=<last>&limit=1000` until it has all N;
- *SSE*: `GET /api/v2/Mailbox` with `Accept: text/event-stream` and `Last-Event-ID`.

Both decode every entry's JSON, as a real client would. How the backlog is made:

- `log` (default): N `MailboxEntry` records (payload shaped like a 1 KiB message's entry,
  type `BenchSynthetic`) are produced straight onto the sequencer's input topic, sealed
  with the identity's data key the way the projector seals them. That key is unwrapped
  from the workers' `data-keys` changelog with the master key (`BackboneSettings.from_env()`),
  i.e. what an operator's replay tool holds. The sequencer numbers them like any entry;
  its rate (produce start → last entry readable) is reported too.
- `messages`: real 1 KiB messages are sent to the identity through the API by a few
  related senders; slower to prepare, but every byte goes the normal way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from backbone.connections import kafka_client_kwargs
from backbone.security.logcrypto import MasterKey
from backbone.settings import BackboneSettings
from bench.end_to_end import BODY, WRAPPED_KEY
from bench.parties import Clients, Party, get, login, mailbox_head, new_party, relate
from bench.progress import Progress
from bench.records import message_payload
from bench.stats import rate
from store.envelopes import EnvelopeCodec
from store.topics import TopicNames, read_records

PAGE = 1000


async def _data_key(settings: BackboneSettings, key_id: str, timeout_s: float = 30.0) -> bytes:
    """The identity's plain data key, from the `data-keys` table's changelog."""
    topic = f"{settings.app_id}-data-keys-changelog"
    wanted = json.dumps(key_id).encode()  # faust's json key serializer
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for key, value in await read_records(settings.cluster.kafka_bootstrap, topic):
            if key == wanted and value is not None:
                wrapped = base64.b64decode(json.loads(value))
                return MasterKey.from_base64(settings.master_key_b64).unwrap(wrapped, key_id)
        await asyncio.sleep(1.0)  # the changelog write may still be on its way
    raise RuntimeError(f"data key {key_id} not found on {topic}")


async def _produce_backlog(settings: BackboneSettings, party: Party, n: int) -> None:
    probe = EnvelopeCodec(settings.master_key_b64, lambda _: b"")
    key_id = probe.identity_key_id(party.address)
    data_key = await _data_key(settings, key_id)
    codec = EnvelopeCodec(settings.master_key_b64, lambda kid: data_key)
    topic = TopicNames(settings.cluster.topic_prefix).mailbox_entries
    key = codec.aggregate_key("identity", party.address)
    payload = message_payload(party.address)
    producer = AIOKafkaProducer(
        **kafka_client_kwargs(settings.cluster),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
    )
    await producer.start()
    try:
        pending = []
        with Progress("catch-up: producing the backlog", n, "entry") as bar:
            for _ in range(n):
                entry = {
                    "recipient": party.address,
                    "event_type": "BenchSynthetic",
                    "payload_json": payload,
                    "source_event_id": str(uuid.uuid4()),
                    "occurred_at": datetime.now(UTC),
                }
                sealed = codec.seal(
                    "MailboxEntry",
                    entry,
                    aggregate_key=key,
                    correlation_id="bench",
                    data_key_id=key_id,
                )
                pending.append(await producer.send(topic, sealed, key=key.encode()))
                if len(pending) >= 1000:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    pending.clear()
            await asyncio.gather(*pending)
            bar.update(len(pending))
    finally:
        await producer.stop()


async def _send_backlog(clients: Clients, party: Party, n: int, senders: int = 4) -> int:
    """Sends n messages to `party`; returns how many were answered 201."""
    peers = [await new_party(clients, i) for i in range(senders)]
    await asyncio.gather(*(relate(clients, p, party) for p in peers))
    body = {"recipients": [{"address": party.address, "encryptedKey": WRAPPED_KEY}], "body": BODY}
    next_k = 0
    ok = 0
    with Progress("catch-up: sending the backlog", n, "msg") as bar:

        async def loop() -> None:
            nonlocal next_k, ok
            while next_k < n:
                k, next_k = next_k, next_k + 1
                sender = peers[k % senders]
                if time.monotonic() - sender.logged_in_at > 600:
                    await login(clients, sender)
                answer = await clients.of(sender).post(
                    "/api/v2/Messages", json=body, headers=sender.headers
                )
                ok += answer.status_code == 201
                bar.update()

        await asyncio.gather(*(loop() for _ in range(16)))
    return ok


async def _wait_sequenced(
    http: httpx.AsyncClient, party: Party, last: int, timeout_s: float
) -> float:
    """Until index `last` is readable; returns the time it became so. Probes with
    `limit=1` reads 1000 indexes ahead of what is known to exist (cheap, and it moves
    the progress bar)."""
    deadline = time.monotonic() + timeout_s
    base = known = party.last_index
    with Progress("catch-up: waiting for the sequencer", last - base, "entry") as bar:
        while time.monotonic() < deadline:
            probe = min(known + 1000, last)
            page = await get(http, f"/api/v2/Mailbox?since={probe - 1}&limit=1", party.headers)
            if page.status_code == 200 and page.json()["result"]:
                known = probe
                bar.set(known - base)
                if known >= last:
                    return time.perf_counter()
                continue
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the mailbox did not reach index {last} within {timeout_s:.0f}s")


async def read_paging(http: httpx.AsyncClient, party: Party, since: int, n: int) -> dict[str, Any]:
    got = 0
    expected = since + 1
    gaps = 0
    with Progress("catch-up: paging", n, "entry") as bar:
        started = time.perf_counter()
        while got < n:
            page = await get(http, f"/api/v2/Mailbox?since={since}&limit={PAGE}", party.headers)
            page.raise_for_status()
            entries = page.json()["result"]
            if not entries:
                break
            for e in entries:
                gaps += e["index"] != expected
                expected = e["index"] + 1
            got += len(entries)
            since = entries[-1]["index"]
            bar.update(len(entries))
        seconds = time.perf_counter() - started
    return {
        "entries": got,
        "seconds": round(seconds, 3),
        "entries_per_s": rate(got, seconds),
        "gaps": gaps,
    }


async def read_sse(http: httpx.AsyncClient, party: Party, since: int, n: int) -> dict[str, Any]:
    got = 0
    last = since + n
    timeout = httpx.Timeout(60.0, read=60.0)
    with Progress("catch-up: SSE", n, "entry") as bar:
        started = time.perf_counter()
        for attempt in (1, 2):
            # Resumes after the last entry seen, as a client does; a second attempt only
            # covers a pooled connection the server closed just as it was reused.
            headers = {
                **party.headers,
                "Accept": "text/event-stream",
                "Last-Event-ID": str(since + got),
            }
            try:
                async with http.stream(
                    "GET", "/api/v2/Mailbox", headers=headers, timeout=timeout
                ) as stream:
                    stream.raise_for_status()
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            entry = json.loads(line[6:])
                            got += 1
                            if got % 1000 == 0:
                                bar.update(1000)
                            if entry["index"] >= last:
                                break
                break
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if attempt == 2:
                    raise
        seconds = time.perf_counter() - started
        bar.update(got % 1000)
    return {"entries": got, "seconds": round(seconds, 3), "entries_per_s": rate(got, seconds)}


async def measure(
    clients: Clients, settings: BackboneSettings, n: int, source: str, party: Party | None = None
) -> dict[str, Any]:
    """`party`: the identity to fill (made here when not given; made in advance when
    extra workers join later, see `bench/__main__.py`)."""
    http = clients.http[0]
    if party is None:
        party = await new_party(clients, 0)
        await asyncio.sleep(1.0)  # its own first entries (device registered) come first
    party.api = 0
    await login(clients, party)
    party.last_index = await mailbox_head(clients, party)
    base = party.last_index
    started = time.perf_counter()
    if source == "log":
        await _produce_backlog(settings, party, n)
        detail = (
            "synthetic MailboxEntry records (1 KiB-message-sized payloads) produced onto "
            f"{TopicNames(settings.cluster.topic_prefix).mailbox_entries}, sealed with the "
            "identity's data key unwrapped by the master key; numbered by the sequencer"
        )
    else:
        sent = await _send_backlog(clients, party, n)
        if sent < n:
            raise RuntimeError(f"only {sent} of {n} backlog messages were accepted")
        detail = "real 1 KiB messages sent through the API by 4 related senders"
    produced = time.perf_counter()
    sequenced_at = await _wait_sequenced(http, party, base + n, timeout_s=120 + n / 200)
    await login(clients, party)  # producing 100,000 entries may outlast a token
    result: dict[str, Any] = {
        "entries": n,
        "source": source,
        "source_detail": detail,
        "produce_seconds": round(produced - started, 2),
        "sequenced_per_s": rate(n, sequenced_at - started),
    }
    result["paging"] = await read_paging(http, party, base, n)
    result["sse"] = await read_sse(http, party, base, n)
    return result
