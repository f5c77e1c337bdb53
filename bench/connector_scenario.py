"""Two Connectors against the running backbone: how long the whole scenario takes and how
much memory a Connector holds while idle and while receiving.

    python -m bench.connector_scenario [--url http://127.0.0.1:8080] [-n 1000]

Runs `connector init` and `connector serve` for organizations A and B in a temporary
directory (real processes, as an organization runs them), then: A creates a template and a
token, B loads it and requests a relationship, A accepts, one message each way. That is
"the scenario" (its wall time is printed, with each step). Then B's resident memory (VmRSS)
is sampled idle for 3 s, and while A sends `-n` messages (1 KiB of text each, 8 at a time)
and B receives and decrypts them; B's receive throughput is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.context import add_stack_arguments, secret_of
from bench.results import machine_line
from localproc.ports import free_port
from localproc.process import ManagedProcess

API_KEY = base64.b64encode(os.urandom(24)).decode()


class Org:
    def __init__(self, name: str, url: str, client_id: str, secret: str, root: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "CONNECTOR_DATA_DIR": str(root / name),
            "CONNECTOR_BACKBONE_URL": url,
            "CONNECTOR_CLIENT_ID": client_id,
            "CONNECTOR_CLIENT_SECRET": secret,
            "CONNECTOR_API_KEY": API_KEY,
            "CONNECTOR_PORT": str(self.port),
            "CONNECTOR_STORAGE_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
        # Run from here, so that `python -m` imports this checkout.
        serve = [sys.executable, "-m", "connector.cli", "serve"]
        self.process = ManagedProcess(name, root, argv=serve, env=self.env, cwd=Path.cwd())
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=60, headers={"X-API-KEY": API_KEY}
        )
        self.address = ""

    def init(self) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "connector.cli", "init"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.address = out.stdout.split()[2]

    async def serve(self) -> None:
        self.process.start()
        while True:
            try:
                if (await self.http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                await asyncio.sleep(0.05)

    def rss_mib(self) -> float:
        pid = self.process.pid()
        assert pid is not None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        answer = await self.http.request(method, path, **kw)
        answer.raise_for_status()
        return answer.json().get("result")

    async def has_incoming(self, n: int) -> bool:
        """At least `n` messages received (one probe at offset n - 1)."""
        path = f"/api/v2/Messages?direction=incoming&limit=1&offset={n - 1}"
        return bool(await self.call("GET", path))

    def stop(self) -> None:
        self.process.stop(timeout=30)


async def _until(check: Callable[[], Awaitable[Any]]) -> Any:
    while True:  # polling the Connector's API is what a business system would do
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.02)


async def scenario(a: Org, b: Org) -> list[tuple[str, float]]:
    steps: list[tuple[str, float]] = []
    t = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        steps.append((name, now - t))
        t = now

    template = await a.call("POST", "/api/v2/RelationshipTemplates/Own", json={"content": "hi"})
    token = await a.call("POST", f"/api/v2/RelationshipTemplates/Own/{template['id']}/Token")
    step("A: template + token")
    await b.call("POST", "/api/v2/Peer/Load", json={"reference": token["reference"]})
    request = await b.call(
        "POST",
        "/api/v2/Relationships",
        json={"templateId": template["id"], "creationContent": "hello"},
    )
    step("B: load reference + request")

    async def pending() -> Any:
        return await a.call("GET", "/api/v2/Relationships?status=Pending")

    await _until(pending)
    step("A: request arrives")
    await a.call("PUT", f"/api/v2/Relationships/{request['id']}/Accept", json={"content": 1})

    async def active() -> Any:
        found = await b.call("GET", f"/api/v2/Relationships/{request['id']}")
        return found["status"] == "Active"

    await _until(active)
    step("A: accept, B: sees it active")
    await a.call("POST", "/api/v2/Messages", json={"recipients": [b.address], "content": "1"})
    await b.call("POST", "/api/v2/Messages", json={"recipients": [a.address], "content": "2"})

    async def both() -> bool:
        return await a.has_incoming(1) and await b.has_incoming(1)

    await _until(both)
    step("one message each way, both received")
    return steps


async def run(url: str, client_id: str, secret: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = (Org(name, url, client_id, secret, Path(tmp)) for name in ("a", "b"))
        try:
            started = time.perf_counter()
            a.init()
            b.init()
            print(f"connector init x2: {time.perf_counter() - started:.2f} s")
            await a.serve()
            await b.serve()
            steps = await scenario(a, b)
            for name, seconds in steps:
                print(f"  {name:<40} {seconds * 1000:8.0f} ms")
            print(f"scenario (template -> messages both ways): {sum(s for _, s in steps):.2f} s")

            idle = []
            for _ in range(30):
                idle.append(b.rss_mib())
                await asyncio.sleep(0.1)
            print(f"B idle RSS: {max(idle):.1f} MiB")

            text = "x" * 1024
            receiving: list[float] = []
            send_started = time.perf_counter()

            async def sender(first: int) -> None:
                for i in range(first, n, 8):
                    await a.call(
                        "POST",
                        "/api/v2/Messages",
                        json={"recipients": [b.address], "content": {"n": i, "t": text}},
                    )

            sending = asyncio.gather(*(sender(k) for k in range(8)))
            while not await b.has_incoming(n + 1):
                receiving.append(b.rss_mib())
                await asyncio.sleep(0.2)
            await sending
            took = time.perf_counter() - send_started
            print(
                f"B received {n} messages in {took:.1f} s ({n / took:.0f}/s),"
                f" RSS while receiving: max {max(receiving, default=0):.1f} MiB;"
                f" A RSS after sending: {a.rss_mib():.1f} MiB"
            )
        finally:
            a.stop()
            b.stop()
    print(machine_line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    secret = secret_of(args)
    asyncio.run(run(args.url, args.client_id, secret, args.n))


if __name__ == "__main__":
    main()
