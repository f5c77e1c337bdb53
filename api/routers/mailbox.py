"""`/api/v1/Mailbox`: the identity's entries after a cursor, as a page, a long poll or a
stream of server-sent events, and each device's acknowledged cursor.

Every entry has the identity's next index (1, 2, 3 … no gap, no duplicate). A client keeps
the last index it handled and asks for what comes after it; `PUT /Cursor` stores that on
the backbone so another device, or the same one after a reinstall, resumes there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api import errors
from api.deps import Authenticated, Caller, State
from api.errors import ApiError
from api.state import ApiState
from api.timestamps import iso
from streams.cassandra_io import run_prepared

router = APIRouter(prefix="/Mailbox", tags=["mailbox"])

MAX_PAGE = 1000
MAX_WAIT_S = 60
HEARTBEAT_S = 15.0
INVALID = "error.platform.validation.invalidPropertyValue"


class CursorRequest(BaseModel):
    index: int = Field(ge=0, le=2**62)


_READ = (
    "SELECT idx, event_type, payload, created_at FROM mailbox WHERE address = ? AND idx > ? LIMIT ?"
)


async def _entries(state: ApiState, address: str, since: int, limit: int) -> list[Any]:
    return list(await run_prepared(state.session, _READ, (address, since, limit)))


def _entry_json(row: Any) -> str:
    # The payload is stored as the JSON text the projector wrote: spliced in as it is, so a
    # page of 1,000 entries is not parsed and serialized again (catch-up speed).
    return (
        f'{{"index":{row.idx},"type":{json.dumps(row.event_type)},"payload":{row.payload},'
        f'"createdAt":"{iso(row.created_at)}"}}'
    )


async def _wait_for_more(
    state: ApiState, caller: Caller, since: int, limit: int, timeout_s: float
) -> list[Any]:
    key = state.envelopes.aggregate_key("identity", caller.address)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        wake = state.mailbox.event_for(key)  # before the read: a notice in between counts
        rows = await _entries(state, caller.address, since, limit)
        left = deadline - asyncio.get_running_loop().time()
        if rows or left <= 0:
            return rows
        try:
            await asyncio.wait_for(wake.wait(), timeout=left)
        except TimeoutError:
            return await _entries(state, caller.address, since, limit)


@router.get("", response_model=None)
async def read_mailbox(
    request: Request,
    caller: Authenticated,
    state: State,
    since: Annotated[int, Query(ge=0, description="the last index already handled")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    wait: Annotated[int, Query(ge=0, le=MAX_WAIT_S, description="long poll: seconds")] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> Any:
    """A page of entries after `since`; with `wait`, hold the request until there is one;
    with `Accept: text/event-stream`, stream every entry as it is sequenced (resume with
    `Last-Event-ID`)."""
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise ApiError(400, INVALID, "Last-Event-ID must be a mailbox index")
        since = int(last_event_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(request, state, caller, since),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    if wait:
        rows = await _wait_for_more(state, caller, since, limit, wait)
    else:
        rows = await _entries(state, caller.address, since, limit)
    last = rows[-1].idx if rows else since
    body = f'{{"result":[{",".join(_entry_json(r) for r in rows)}],"since":{since},"last":{last}}}'
    return Response(body.encode(), media_type="application/json")


async def _stream(
    request: Request, state: ApiState, caller: Caller, since: int
) -> AsyncIterator[bytes]:
    yield b": mailbox stream\n\n"
    try:
        while not await request.is_disconnected():
            rows = await _wait_for_more(state, caller, since, MAX_PAGE, HEARTBEAT_S)
            if not rows:
                yield b": keep-alive\n\n"
                continue
            # One write per page, not per entry.
            yield "".join(
                f"id: {row.idx}\nevent: {row.event_type}\ndata: {_entry_json(row)}\n\n"
                for row in rows
            ).encode()
            since = rows[-1].idx
    except errors.STORE_FAILURES as exc:
        # The headers are long gone, so no 503: the stream ends, telling the client when to
        # come back; it resumes after the last id it got (Last-Event-ID).
        errors.store_unavailable(exc)
        yield b"retry: 2000\nevent: unavailable\ndata: {}\n\n"


@router.get("/Cursor")
async def get_cursors(caller: Authenticated, state: State) -> Any:
    rows = await run_prepared(
        state.session,
        "SELECT device_id, idx, updated_at FROM mailbox_cursors WHERE address = ?",
        (caller.address,),
    )
    cursors = {r.device_id: r for r in rows}
    own = cursors.get(caller.device_id)
    return {
        "result": {
            "index": own.idx if own else 0,
            "devices": [
                {"deviceId": d, "index": r.idx, "updatedAt": iso(r.updated_at)}
                for d, r in sorted(cursors.items())
            ],
        }
    }


@router.put("/Cursor")
async def put_cursor(body: CursorRequest, caller: Authenticated, state: State) -> Any:
    """Acknowledge the calling device's mailbox up to `index`; a cursor never moves back."""
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "AcknowledgeMailbox",
        {"address": caller.address, "device_id": caller.device_id, "index": body.index,
         "requested_at": datetime.now(UTC)},
    )  # fmt: skip
    return await get_cursors(caller, state)
