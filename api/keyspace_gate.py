"""Holds requests while `backbone replay switch` moves the API to another keyspace.

Requests wait at the gate instead of failing (backbone/replay/pointer.py has the phases);
writes (every method but GET, HEAD and OPTIONS) are counted while they run, so that the
process can say when none is in flight on the old keyspace. Reads are not counted: a
long-lived stream must not hold a switch up, and a read that ends on the old keyspace
sees what was acknowledged before the gate closed.

A request held longer than HOLD_S (a switch whose command died half-way goes back within
its own timeout, shorter than this) is answered 503 with Retry-After.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from backbone.replay.pointer import ActiveKeyspace

HOLD_S = 90.0
SWITCHING = "error.platform.keyspaceSwitching"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class KeyspaceGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = getattr(scope["app"].state, "backbone", None) if scope["type"] == "http" else None
        if state is None:
            await self.app(scope, receive, send)
            return
        keyspace: ActiveKeyspace = state.keyspace
        if keyspace.is_open() and scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        try:
            if scope["method"] in _READS:
                await asyncio.wait_for(keyspace.ready(), HOLD_S)
                await self.app(scope, receive, send)
                return
            await asyncio.wait_for(keyspace.begin_write(), HOLD_S)
        except TimeoutError:
            busy = errors.response(
                503,
                SWITCHING,
                "the read models are being switched; try again",
                {"Retry-After": "1"},
            )
            await busy(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            keyspace.end_write()
