"""End-to-end delivery: from a message send to the recipient's open mailbox stream.

    python -m bench.delivery_latency [--url http://127.0.0.1:8080] [-n 300] [--concurrency 1]
                                     [--respond-async]

A sender and a recipient with an active relationship; the recipient holds a server-sent
events stream open (`GET /api/v2/Mailbox`, `Accept: text/event-stream`); the sender sends
`-n` messages (1 KiB ciphertext each). For each message it prints the time from the send's
201 to the entry on the stream (median, p99), and from the start of the send. With
`--concurrency` above 1, sends overlap and the delivery throughput is printed too.
`--respond-async` sends with `Prefer: respond-async` (202 once the message is durable on the
log) and prints send -> answer too, so both ways of sending compare in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import time

import httpx

from bench.context import add_stack_arguments, secret_of
from bench.results import machine_line
from bench.stats import percentile
from connector.backbone_client import BackboneClient

BODY = base64.b64encode(os.urandom(1024)).decode()


async def related_pair(
    http: httpx.AsyncClient, client: BackboneClient
) -> tuple[dict[str, str], str, dict[str, str]]:
    """A new sender and recipient with an active relationship: the sender's auth headers,
    the recipient's address and auth headers."""
    sender = (await client.create_identity_and_log_in("bench sender password")).headers
    logged_in = await client.create_identity_and_log_in("bench recipient password")
    recipient_address, recipient = logged_in.address, logged_in.headers
    template = await http.post(
        "/api/v2/RelationshipTemplates", json={"content": "eA=="}, headers=recipient
    )
    body = {"relationshipTemplateId": template.json()["result"]["id"], "creationContent": "eA=="}
    rid = (await http.post("/api/v2/Relationships", json=body, headers=sender)).json()
    await http.put(f"/api/v2/Relationships/{rid['result']['id']}/Accept", headers=recipient)
    return sender, recipient_address, recipient


async def run(
    url: str, client_id: str, secret: str, n: int, concurrency: int, respond_async: bool = False
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        client = BackboneClient(http, client_id, secret)
        sender, recipient_address, recipient = await related_pair(http, client)
        since = (await http.get("/api/v2/Mailbox?since=0&limit=1000", headers=recipient)).json()

        arrived: dict[str, float] = {}
        all_in = asyncio.Event()

        async def listen() -> None:
            headers = {
                **recipient,
                "Accept": "text/event-stream",
                "Last-Event-ID": str(since["last"]),
            }
            async with http.stream("GET", "/api/v2/Mailbox", headers=headers) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        entry = json.loads(line[6:])
                        if entry["type"] == "MessageReceived":
                            arrived[entry["payload"]["messageId"]] = time.perf_counter()
                            if len(arrived) >= n:
                                all_in.set()
                                return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        started: dict[str, float] = {}
        answered: dict[str, float] = {}
        slots = asyncio.Semaphore(concurrency)
        message = {
            "recipients": [{"address": recipient_address, "encryptedKey": "a2V5"}],
            "body": BODY,
        }

        headers = {**sender, "Prefer": "respond-async"} if respond_async else sender
        expected = 202 if respond_async else 201

        async def send() -> None:
            async with slots:
                t0 = time.perf_counter()
                answer = await http.post("/api/v2/Messages", json=message, headers=headers)
                t1 = time.perf_counter()
                assert answer.status_code == expected, answer.text
                mid = answer.json()["result"]["id"]
                started[mid], answered[mid] = t0, t1

        t_start = time.perf_counter()
        await asyncio.gather(*(send() for _ in range(n)))
        await asyncio.wait_for(all_in.wait(), 120)
        wall = time.perf_counter() - t_start
        listener.cancel()
    answer = [(answered[m] - started[m]) * 1000 for m in started]
    after_answer = [(arrived[m] - answered[m]) * 1000 for m in answered]
    after_send = [(arrived[m] - started[m]) * 1000 for m in started]
    status = "202" if respond_async else "201"
    mode = "Prefer: respond-async" if respond_async else "default"
    print(f"{machine_line()}; api {url}; concurrency {concurrency}; {mode}")
    for name, ms in (
        (f"send -> {status}", answer),
        (f"{status} -> stream", after_answer),
        ("send start -> stream", after_send),
    ):
        print(
            f"{name:<22} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   "
            f"p99 {percentile(ms, 0.99):7.1f} ms   min {min(ms):7.1f} ms"
        )
    print(f"throughput             {n / wall:.1f} messages/s delivered over {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--respond-async", action="store_true", help="send with Prefer: respond-async (202)"
    )
    args = parser.parse_args()
    secret = secret_of(args)
    asyncio.run(run(args.url, args.client_id, secret, args.n, args.concurrency, args.respond_async))


if __name__ == "__main__":
    main()
