"""`GET /api/v{1,2}/sse`: Enmeshed's server-sent events, which the Enmeshed Connector's SSE
module and the apps listen to: `event: ExternalEventCreated` whenever the identity gets an
external event, so the client syncs at once instead of polling.

Fed by the same mailbox notices as our own mailbox stream (api/mailbox_notifier.py): every
API process reads every notice, so any replica serves any identity's stream and the
endpoint scales with the API (upstream runs its SSE server as one replica). Only entries
the Enmeshed sync would hand out are announced (api/enmeshed_events.py); the event names
the external event, the client fetches it through a sync run as always.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from api.deps import Authenticated, Caller, State
from api.enmeshed_events import enmeshed_event
from api.routers.mailbox import follow
from api.routers.sync import external_event_id
from api.state import ApiState
from api.stream_slots import Slot
from api.timestamps import iso
from store.readmodels.mailbox import MailboxEntry

router = APIRouter(tags=["sync"])


@router.get("/sse", response_class=StreamingResponse)
async def enmeshed_events(
    request: Request, caller: Authenticated, state: State
) -> StreamingResponse:
    """Ends when the token expires or the device is deleted (`event: unauthorized`): the
    client reconnects with a fresh token."""
    head = await state.reads.mailbox.head(caller.address)
    slot = state.streams.slot(caller.address)
    return StreamingResponse(
        _stream(request, state, caller, head, slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),
    )


async def _stream(
    request: Request, state: ApiState, caller: Caller, since: int, slot: Slot
) -> AsyncIterator[bytes]:
    def page(rows: list[MailboxEntry]) -> str:
        return "".join(_event(row, caller) for row in rows)

    # A client syncs on reconnecting anyway.
    async for chunk in follow(
        request, state, caller, since, slot, b": enmeshed events", page, b"retry: 2000\n\n"
    ):
        yield chunk


def _event(row: MailboxEntry, caller: Caller) -> str:
    shown = enmeshed_event(row.event_type, json.loads(row.payload), caller.address)
    if shown is None:
        return ""
    content = {
        "eventName": "ExternalEventCreated",
        "sentAt": iso(datetime.now(UTC)),
        "payload": {"eventId": external_event_id(row.idx), "index": row.idx, "type": shown[0]},
    }
    return f"event: ExternalEventCreated\ndata: {json.dumps(content)}\n\n"
