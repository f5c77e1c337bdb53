"""Latency of identity creation through a running backbone, end to end.

    python -m bench.identity_latency [--url http://127.0.0.1:8080] [-n 200] [--concurrency 1]

Against `make up` (client `local`, its secret read from the state directory) or any API
(`--client-id`, `--client-secret`). One creation is what a new app or connector does:
`POST /api/v2/Challenges`, sign it, `POST /api/v2/Identities` (the command goes through
Kafka, the decider, the projection into Cassandra and back), then `POST /connect/token`,
which proves the write is readable. The three are timed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from nacl.signing import SigningKey

from bench.context import add_stack_arguments, secret_of
from bench.results import machine_line
from bench.stats import percentile
from connector.backbone_client import BackboneClient


def _report(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name:<22} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   "
        f"p99 {percentile(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms"
    )


async def run(url: str, client_id: str, secret: str, n: int, concurrency: int) -> None:
    timings: dict[str, list[float]] = {
        "challenge+sign": [],
        "create identity": [],
        "first login": [],
    }
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        client = BackboneClient(http, client_id, secret)
        await client.create_identity("warm-up password")  # connections, JIT-free paths
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                key = SigningKey.generate()
                t0 = time.perf_counter()
                signed = await client.signed_challenge(key)
                t1 = time.perf_counter()
                identity = await client.create_identity_signed(f"password {i:06d}", key, signed)
                t2 = time.perf_counter()
                await client.token(identity.device.username, identity.device.password)
                t3 = time.perf_counter()
                timings["challenge+sign"].append(t1 - t0)
                timings["create identity"].append(t2 - t1)
                timings["first login"].append(t3 - t2)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - started
    print(f"{machine_line()}; api {url}; concurrency {concurrency}")
    for name, samples in timings.items():
        print(_report(name, samples))
    print(f"throughput             {n / wall:.1f} identities/s over {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    secret = secret_of(args)
    asyncio.run(run(args.url, args.client_id, secret, args.n, args.concurrency))


if __name__ == "__main__":
    main()
