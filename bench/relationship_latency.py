"""Latency of the relationship flow through a running backbone, end to end.

    python -m bench.relationship_latency [--url http://127.0.0.1:8080] [-n 100]

Per pair: the owner publishes a template, the peer requests a relationship (template
decider -> pair decider -> projection -> 201), the owner accepts (pair decider ->
projection -> 200). Identities are made first and not timed. Then `--contenders` peers
request one template with `--limit` allocations at once, as in the allocation test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import time

import httpx

from bench.context import add_stack_arguments, secret_of
from bench.results import machine_line
from bench.stats import percentile
from connector.backbone_client import BackboneClient

CONTENT = base64.b64encode(os.urandom(1024)).decode()  # 1 KiB of "ciphertext"


def _line(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name:<22} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   "
        f"p99 {percentile(ms, 0.99):7.1f} ms"
    )


async def run(url: str, client_id: str, secret: str, n: int, contenders: int, limit: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        client = BackboneClient(http, client_id, secret)
        slots = asyncio.Semaphore(4)

        async def login(i: int) -> dict[str, str]:
            async with slots:
                return (await client.create_identity_and_log_in(f"bench password {i}")).headers

        people = await asyncio.gather(*(login(i) for i in range(2 * n + contenders + 1)))
        times: dict[str, list[float]] = {"create template": [], "request": [], "accept": []}
        for i in range(n):
            owner, peer = people[2 * i], people[2 * i + 1]
            t0 = time.perf_counter()
            answer = await http.post(
                "/api/v2/RelationshipTemplates", json={"content": CONTENT}, headers=owner
            )
            t1 = time.perf_counter()
            body = {
                "relationshipTemplateId": answer.json()["result"]["id"],
                "creationContent": CONTENT,
            }
            rel = (await http.post("/api/v2/Relationships", json=body, headers=peer)).json()
            t2 = time.perf_counter()
            accepted = await http.put(
                f"/api/v2/Relationships/{rel['result']['id']}/Accept", headers=owner
            )
            t3 = time.perf_counter()
            assert accepted.status_code == 200, accepted.text
            times["create template"].append(t1 - t0)
            times["request"].append(t2 - t1)
            times["accept"].append(t3 - t2)

        owner, rest = people[2 * n], people[2 * n + 1 :]
        answer = await http.post(
            "/api/v2/RelationshipTemplates",
            json={"content": CONTENT, "maxNumberOfAllocations": limit},
            headers=owner,
        )
        body = {"relationshipTemplateId": answer.json()["result"]["id"], "creationContent": CONTENT}
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(http.post("/api/v2/Relationships", json=body, headers=p) for p in rest)
        )
        contended = time.perf_counter() - t0
    granted = sum(a.status_code == 201 for a in answers)
    print(f"{machine_line()}; api {url}")
    for name, samples in times.items():
        print(_line(name, samples))
    print(
        f"contention             {len(rest)} concurrent requests, limit {limit}: "
        f"{granted} granted, all answered in {contended * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--contenders", type=int, default=50)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    secret = secret_of(args)
    asyncio.run(run(args.url, args.client_id, secret, args.n, args.contenders, args.limit))


if __name__ == "__main__":
    main()
