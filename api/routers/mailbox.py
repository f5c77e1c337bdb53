"""`/api/v1/Mailbox`: the identity's entries after a cursor, as a page, a long poll or a
stream of server-sent events, and each device's acknowledged cursor.

Every entry has the identity's next index (1, 2, 3 … no gap, no duplicate). A client keeps
the last index it handled and asks for what comes after it; `PUT /Cursor` stores that on
the backbone so another device, or the same one after a reinstall, resumes there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictInt
from starlette.background import BackgroundTask

from api import errors
from api.deps import Authenticated, Caller, State, still_authorized
from api.errors import ApiError
from api.schemas import Cursors, Envelope, MailboxPage, documented
from api.state import ApiState
from api.stream_slots import Slot
from api.timestamps import iso
from store.readmodels.mailbox import MailboxEntry

router = APIRouter(prefix="/Mailbox", tags=["mailbox"])

MAX_PAGE = 1000
MAX_WAIT_S = 60
HEARTBEAT_S = 15.0
INVALID = "error.platform.validation.invalidPropertyValue"
UNAUTHORIZED = "error.platform.unauthorized"
# Mailbox indexes are Cassandra bigints: a larger one made the driver fail with a 500.
MAX_INDEX = 2**63 - 1
# What a stream says before it ends because its token expired or its device was deleted:
# the client reconnects with a fresh token (and is refused if its device is gone).
ENDED_UNAUTHORIZED = b"event: unauthorized\ndata: {}\n\n"


class CursorRequest(BaseModel):
    # Strict: `false` or `"5"` are not indexes (lax parsing took them).
    index: StrictInt = Field(ge=0, le=MAX_INDEX)


def parse_last_event_id(value: str | None) -> int | None:
    """The index in a `Last-Event-ID` header; None when absent or empty (as the SSE spec
    resets it). ASCII digits only: `str.isdigit()` also takes `²`, which `int()` refuses."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_INDEX:
        raise ApiError(400, INVALID, "Last-Event-ID must be a mailbox index")
    return int(value)


def _entry_json(row: MailboxEntry) -> str:
    # The payload is stored as the JSON text the projector wrote: spliced in as it is, so a
    # page of 1,000 entries is not parsed and serialized again (catch-up speed).
    return (
        f'{{"index":{row.idx},"type":{json.dumps(row.event_type)},"payload":{row.payload},'
        f'"createdAt":"{iso(row.created_at)}"}}'
    )


async def _wait_for_more(
    state: ApiState, caller: Caller, since: int, limit: int, timeout_s: float
) -> list[MailboxEntry]:
    """Entries after `since`, waiting up to `timeout_s` (never past the caller's token) for
    the first. Raises `CredentialsGone` instead of handing entries to a device that was
    deleted or whose token expired meanwhile: checked on every wake-up and before returning
    (one read each), so a long poll or stream ends with its credentials (issue 19)."""
    key = state.envelopes.aggregate_key("identity", caller.address)
    timeout_s = max(0.0, min(timeout_s, caller.seconds_left()))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        wake = state.mailbox.event_for(key)  # before the read: a notice in between counts
        rows = await state.reads.mailbox.after(caller.address, since, limit)
        left = deadline - asyncio.get_running_loop().time()
        if rows or left <= 0:
            break
        try:
            await asyncio.wait_for(wake.wait(), timeout=left)
        except TimeoutError:
            rows = await state.reads.mailbox.after(caller.address, since, limit)
            break
        if not await still_authorized(state, caller):
            raise CredentialsGone
    if not await still_authorized(state, caller):
        raise CredentialsGone
    return rows


class CredentialsGone(Exception):
    """The token of a waiting request expired, or its device was deleted."""


@router.get("", response_model=None, responses=documented(MailboxPage))
async def read_mailbox(
    request: Request,
    caller: Authenticated,
    state: State,
    since: Annotated[
        int, Query(ge=0, le=MAX_INDEX, description="the last index already handled")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    wait: Annotated[int, Query(ge=0, le=MAX_WAIT_S, description="long poll: seconds")] = 0,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=20, pattern=r"^[0-9]*$")
    ] = None,
) -> Any:
    """A page of entries after `since`; with `wait`, hold the request until there is one;
    with `Accept: text/event-stream`, stream every entry as it is sequenced (resume with
    `Last-Event-ID`). Streams and long polls end when the token expires or the device is
    deleted, and one identity holds at most a few at once (429 beyond)."""
    resumed = parse_last_event_id(last_event_id)
    if resumed is not None:
        since = resumed
    if "text/event-stream" in request.headers.get("accept", ""):
        slot = state.streams.slot(caller.address)
        return StreamingResponse(
            _stream(request, state, caller, since, slot),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            background=BackgroundTask(slot.release),
        )
    if wait:
        with state.streams.held(caller.address):
            try:
                rows = await _wait_for_more(state, caller, since, limit, wait)
            except CredentialsGone as exc:
                raise ApiError(
                    401, UNAUTHORIZED, "the token expired or the device was deleted"
                ) from exc
    else:
        rows = await state.reads.mailbox.after(caller.address, since, limit)
    last = rows[-1].idx if rows else since
    body = f'{{"result":[{",".join(_entry_json(r) for r in rows)}],"since":{since},"last":{last}}}'
    return Response(body.encode(), media_type="application/json")


async def _stream(
    request: Request, state: ApiState, caller: Caller, since: int, slot: Slot
) -> AsyncIterator[bytes]:
    def page(rows: list[MailboxEntry]) -> str:
        return "".join(
            f"id: {row.idx}\nevent: {row.event_type}\ndata: {_entry_json(row)}\n\n" for row in rows
        )

    # A client resumes after the last id it got (Last-Event-ID).
    ended = b"retry: 2000\nevent: unavailable\ndata: {}\n\n"
    async for chunk in follow(
        request, state, caller, since, slot, b": mailbox stream", page, ended
    ):
        yield chunk


async def follow(
    request: Request,
    state: ApiState,
    caller: Caller,
    since: int,
    slot: Slot,
    banner: bytes,
    page: Callable[[list[MailboxEntry]], str],
    unavailable: bytes,
) -> AsyncIterator[bytes]:
    """A server-sent-event stream of the caller's mailbox after `since`, one write per page
    (`page` renders the rows; an empty text writes nothing), a keep-alive when nothing came,
    until the client leaves or its credentials end. The stream's `slot` is given back."""
    yield banner + b"\n\n"
    try:
        while not await request.is_disconnected():
            try:
                rows = await _wait_for_more(state, caller, since, MAX_PAGE, HEARTBEAT_S)
            except CredentialsGone:
                yield ENDED_UNAUTHORIZED
                return
            if not rows:
                yield b": keep-alive\n\n"
                continue
            text = page(rows)
            if text:
                yield text.encode()
            since = rows[-1].idx
    except errors.STORE_FAILURES as exc:
        # The headers are long gone, so no 503: the stream ends with `unavailable`, telling
        # the client when to come back.
        errors.store_unavailable(exc)
        yield unavailable
    finally:
        slot.release()


@router.get("/Cursor", responses=documented(Envelope[Cursors]))
async def get_cursors(caller: Authenticated, state: State) -> Any:
    cursors = {c.device_id: c for c in await state.reads.mailbox.cursors(caller.address)}
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


@router.put("/Cursor", responses=documented(Envelope[Cursors], refuses=(403,)))
async def put_cursor(body: CursorRequest, caller: Authenticated, state: State) -> Any:
    """Acknowledge the calling device's mailbox up to `index`; a cursor never moves back, so
    one past the mailbox's head would stick there for good: refused. The head only grows, so
    an index at or below it now stays valid whatever the decider sees later."""
    head = await state.reads.mailbox.head(caller.address)
    if body.index > head:
        raise ApiError(400, INVALID, f"index: past the mailbox's last entry ({head})")
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "AcknowledgeMailbox",
        {
            "address": caller.address,
            "device_id": caller.device_id,
            "index": body.index,
            "requested_at": datetime.now(UTC),
        },
    )
    return await get_cursors(caller, state)
