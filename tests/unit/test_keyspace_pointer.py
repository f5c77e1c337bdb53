"""The rules a process follows for the keyspace pointer (backbone/replay/pointer.py): an API
process holds writes from `draining` on and says so only when none is in flight; a worker
goes on while the APIs drain and stops at `paused`; `serving` a new keyspace swaps the
session (the old one is closed later, not under a request) and opens the gate."""

from __future__ import annotations

import asyncio
from typing import Any

from backbone.replay.pointer import DRAINING, PAUSED, SERVING, ActiveKeyspace, Pointer


class FakeCluster:
    def __init__(self) -> None:
        self.opened: list[str] = []

    def connect(self, keyspace: str | None = None) -> Any:
        self.opened.append(str(keyspace))
        return f"session on {keyspace}"


def _active(role: str) -> tuple[ActiveKeyspace, FakeCluster]:
    cluster = FakeCluster()
    active = ActiveKeyspace("old", role, cluster, "session on old", "control")
    return active, cluster


async def test_an_api_drains_its_writes_before_it_says_it_holds_them() -> None:
    api, _ = _active("api")
    write = await api.begin_write()  # a request already inside
    assert write == "session on old"
    draining = asyncio.create_task(api._apply(Pointer(1, "old", "new", DRAINING)))
    await asyncio.sleep(0.05)
    assert not draining.done(), "said drained with a write in flight"
    held = asyncio.create_task(api.begin_write())  # a new write waits at the gate
    await asyncio.sleep(0.05)
    assert not held.done()
    api.end_write()
    await asyncio.wait_for(draining, 1)
    assert (api.epoch, api.phase) == (1, DRAINING)
    assert not api.is_open()

    await api._apply(Pointer(2, "new", "new", SERVING))
    assert await asyncio.wait_for(held, 1) == "session on new"
    assert api.session == "session on new" and api.keyspace == "new"
    api.end_write()


async def test_a_worker_goes_on_while_the_apis_drain_and_stops_when_paused() -> None:
    worker, cluster = _active("worker")
    await worker._apply(Pointer(1, "old", "new", DRAINING))
    assert worker.is_open()
    async with worker.writing() as session:
        assert session == "session on old"
    await worker._apply(Pointer(2, "old", "new", PAUSED))
    assert not worker.is_open()
    # Going back (a switch that did not finish): the same keyspace, the gate open again.
    await worker._apply(Pointer(3, "old", "old", SERVING))
    assert worker.is_open() and worker.session == "session on old" and cluster.opened == []
