"""`/api/v1/SyncRuns` and `/api/v1/Datawallet`: Enmeshed's sync, over this backbone's mailbox.

External events are the identity's mailbox entries: the same index, an id `EXT` + the index
padded to 17 digits, and the same payload. The rules are in domain/sync_decider.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, Field

from api.content import BASE64_PATTERN, decode_content, encode_content
from api.deps import Authenticated, Caller, State
from api.enmeshed_events import enmeshed_event
from api.errors import ApiError
from api.idempotency import (
    Idempotent,
    MaybeIdempotent,
    bind_key,
    new_resource_id,
)
from api.paging import Paging
from api.schemas import (
    CreatedModifications,
    Datawallet,
    Envelope,
    ExternalEvent,
    FinalizedSyncRun,
    Modification,
    PagedEnvelope,
    StartedSyncRun,
    SyncRunOut,
    documented,
    refusals,
)
from api.state import ApiState
from api.timestamps import iso
from domain.sync_decider import OLD_VERSION
from store.readmodels.sync import SyncRun

router = APIRouter(tags=["sync"])

NOT_FOUND = "error.platform.recordNotFound"
INVALID = "error.platform.validation.invalidPropertyValue"
SyncRunId = Annotated[str, Path(pattern=r"^SYN[A-Za-z0-9]{17}$")]
DatawalletVersion = Annotated[
    int, Header(alias="x-supported-datawallet-version", ge=0, le=1_000_000)
]
MAX_MODIFICATIONS = 500
MAX_PAYLOAD_BYTES = 16 * 1024


class StartSyncRunRequest(BaseModel):
    type: Literal["ExternalEventSync", "DatawalletVersionUpgrade"] = "ExternalEventSync"
    lockDuration: int | None = Field(default=None, ge=1, le=60, description="minutes")


class ModificationIn(BaseModel):
    objectIdentifier: str = Field(min_length=1, max_length=100)
    payloadCategory: str | None = Field(default=None, max_length=50)
    collection: str = Field(min_length=1, max_length=50)
    type: Literal["Create", "Update", "Delete", "CacheChanged"]
    encryptedPayload: str | None = Field(default=None, max_length=22_000, pattern=BASE64_PATTERN)


class ExternalEventResult(BaseModel):
    externalEventId: str = Field(pattern=r"^EXT[0-9]{17}$")
    errorCode: str | None = Field(default=None, min_length=1, max_length=100)


class FinalizeExternalEventSyncRequest(BaseModel):
    externalEventResults: list[ExternalEventResult] = Field(default_factory=list, max_length=1000)
    datawalletModifications: list[ModificationIn] = Field(
        default_factory=list, max_length=MAX_MODIFICATIONS
    )


class FinalizeVersionUpgradeRequest(BaseModel):
    newDatawalletVersion: int = Field(ge=1, le=1_000_000)
    datawalletModifications: list[ModificationIn] = Field(
        default_factory=list, max_length=MAX_MODIFICATIONS
    )


# Indexes are Cassandra bigints and Avro longs; one more than fits was a 500 (issue 19).
MAX_LOCAL_INDEX = 2**63 - 2  # stored_index adds one


class CreateModificationsRequest(BaseModel):
    localIndex: int | None = Field(default=None, ge=-1, le=MAX_LOCAL_INDEX)
    modifications: list[ModificationIn] = Field(min_length=1, max_length=MAX_MODIFICATIONS)


def external_event_id(index: int) -> str:
    return f"EXT{index:017d}"


# Datawallet modifications are numbered 1, 2, 3 ... by the identity's decider
# (domain/sync_decider.py) and 0, 1, 2 ... on the wire, as Enmeshed numbers them: the
# client derives each payload's key from the index it expects (`localIndex + 1`, or 0
# for the first), so the numbers it sees must be exactly its own. -1 is the client's
# "nothing yet".
def wire_index(stored: int) -> int:
    return stored - 1


def stored_index(wire: int) -> int:
    return wire + 1


def _modifications(
    items: list[ModificationIn], idem: Idempotent | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "id": new_resource_id("DWM", idem, str(n)),
            "object_identifier": m.objectIdentifier,
            "payload_category": m.payloadCategory,
            "collection": m.collection,
            "type": m.type,
            "encrypted_payload": decode_content(
                m.encryptedPayload, "encryptedPayload", MAX_PAYLOAD_BYTES
            )
            if m.encryptedPayload
            else None,
        }
        for n, m in enumerate(items)
    ]


async def _send(
    state: ApiState,
    caller: Caller,
    name: str,
    body: dict[str, Any],
    idem: Idempotent | None = None,
) -> None:
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        name,
        {
            "address": caller.address,
            "device_id": caller.device_id,
            "requested_at": datetime.now(UTC),
            **body,
        },
        idem,
    )


async def _run_row(state: ApiState, caller: Caller, run_id: str) -> SyncRun:
    row = await state.reads.sync.run(run_id)
    if row is None or row.address != caller.address:
        raise ApiError(404, NOT_FOUND, "sync run not found")
    return row


def _run_dto(row: SyncRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "syncRunType": row.run_type,
        "expiresAt": iso(row.expires_at),
        "index": row.to_index,
        "createdAt": iso(row.created_at),
        "createdBy": row.address,
        "createdByDevice": row.device_id,
        "eventCount": row.to_index - row.from_index + len(row.retry_indexes or []),
        "status": row.status,
    }


@router.post(
    "/SyncRuns",
    response_model=None,
    responses={
        200: {
            "model": Envelope[StartedSyncRun],
            "description": "No new events: no run was started (`syncRun` is null)",
        },
        201: {"model": Envelope[StartedSyncRun], "description": "A run was started"},
        **refusals(403),
    },
)
async def start_sync_run(
    caller: Authenticated,
    state: State,
    key: MaybeIdempotent,
    version: DatawalletVersion = 0,
    body: StartSyncRunRequest | None = None,
) -> Any:
    body = body or StartSyncRunRequest()
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    head = await state.reads.mailbox.head(caller.address)
    run_id = new_resource_id("SYN", idem)
    await _send(
        state,
        caller,
        "StartSyncRun",
        {
            "sync_run_id": run_id,
            "run_type": body.type,
            "head_index": head,
            "lock_seconds": (body.lockDuration or 10) * 60,
            "supported_datawallet_version": version,
        },
        idem,
    )
    row = await state.reads.sync.run(run_id)
    if row is None:
        return {"result": {"status": "NoNewEvents", "syncRun": None}}
    return Response(
        json.dumps({"result": {"status": "Created", "syncRun": _run_dto(row)}}),
        status_code=201,
        media_type="application/json",
    )


@router.get("/SyncRuns/{run_id}", responses=documented(Envelope[SyncRunOut]))
async def get_sync_run(run_id: SyncRunId, caller: Authenticated, state: State) -> Any:
    return {"result": _run_dto(await _run_row(state, caller, run_id))}


@router.get("/SyncRuns/{run_id}/ExternalEvents", responses=documented(PagedEnvelope[ExternalEvent]))
async def external_events(
    run_id: SyncRunId, caller: Authenticated, state: State, page: Paging
) -> Any:
    run = await _run_row(state, caller, run_id)
    mailbox = state.reads.mailbox
    rows = await mailbox.between(caller.address, run.from_index, run.to_index)
    for index in run.retry_indexes or []:
        retried = await mailbox.at(caller.address, index)
        if retried is not None:
            rows.append(retried)
    errors = await state.reads.sync.error_counts(caller.address)
    events = []
    for r in sorted(rows, key=lambda r: r.idx):
        # Only what upstream would send, in its shapes (api/enmeshed_events.py).
        shown = enmeshed_event(r.event_type, json.loads(r.payload), caller.address)
        if shown is not None:
            events.append(
                {
                    "id": external_event_id(r.idx),
                    "type": shown[0],
                    "index": r.idx,
                    "createdAt": iso(r.created_at),
                    "syncErrorCount": errors.get(r.idx, 0),
                    "payload": shown[1],
                }
            )
    return page.envelope(events)


async def _finalize(
    state: ApiState,
    caller: Caller,
    run_id: str,
    results: list[ExternalEventResult],
    modifications: list[ModificationIn],
    new_version: int | None,
) -> Any:
    mods = _modifications(modifications)
    run = await _run_row(state, caller, run_id)
    await _send(
        state,
        caller,
        "FinalizeSyncRun",
        {
            "sync_run_id": run_id,
            "results": [
                {"index": int(r.externalEventId[3:]), "error_code": r.errorCode} for r in results
            ],
            "new_datawallet_version": new_version,
            "modifications": mods,
        },
    )
    written = await _written_modifications(state, caller, [m["id"] for m in mods])
    head = await state.reads.mailbox.head(caller.address)
    return {
        "result": {
            "newDatawalletModificationIndex": max((m["index"] for m in written), default=None),
            "datawalletModifications": written,
            # The client starts another run at once while this is true (a run takes at
            # most MAX_EVENTS_PER_RUN events, and entries keep arriving).
            "newUnsyncedExternalEventsExist": head > run.to_index,
        }
    }


@router.put(
    "/SyncRuns/{run_id}/FinalizeExternalEventSync",
    responses=documented(Envelope[FinalizedSyncRun], refuses=(403,)),
)
async def finalize_external_event_sync(
    run_id: SyncRunId, body: FinalizeExternalEventSyncRequest, caller: Authenticated, state: State
) -> Any:
    return await _finalize(
        state, caller, run_id, body.externalEventResults, body.datawalletModifications, None
    )


@router.put(
    "/SyncRuns/{run_id}/FinalizeDatawalletVersionUpgrade",
    responses=documented(Envelope[FinalizedSyncRun], refuses=(403,)),
)
async def finalize_version_upgrade(
    run_id: SyncRunId,
    body: FinalizeVersionUpgradeRequest,
    caller: Authenticated,
    state: State,
    version: DatawalletVersion = 0,
) -> Any:
    """Upgrade to `newDatawalletVersion`, which the calling device must support (its
    `x-supported-datawallet-version`): a version above it locked out every device, this one
    included (issue 19). A downgrade is refused by the identity's decider."""
    if body.newDatawalletVersion > version:
        raise ApiError(
            400, OLD_VERSION, "newDatawalletVersion is above this device's supported version"
        )
    return await _finalize(
        state, caller, run_id, [], body.datawalletModifications, body.newDatawalletVersion
    )


async def _written_modifications(
    state: ApiState, caller: Caller, ids: list[str]
) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = await state.reads.sync.newest_modifications(caller.address, len(ids) * 2)
    wanted = set(ids)
    found = [
        {"id": r.id, "index": wire_index(r.idx), "createdAt": iso(r.created_at)}
        for r in rows
        if r.id in wanted
    ]
    return sorted(found, key=lambda m: m["index"])


@router.get("/Datawallet", responses=documented(Envelope[Datawallet]))
async def get_datawallet(caller: Authenticated, state: State) -> Any:
    return {"result": {"version": await state.reads.sync.datawallet_version(caller.address)}}


@router.get("/Datawallet/Modifications", responses=documented(PagedEnvelope[Modification]))
async def get_modifications(
    caller: Authenticated,
    state: State,
    page: Paging,
    version: DatawalletVersion = 0,
    local_index: Annotated[int, Query(alias="localIndex", ge=-1, le=MAX_LOCAL_INDEX)] = -1,
) -> Any:
    # As upstream: a device that supports an older version than the datawallet's cannot
    # read payloads written in the newer one (the header was ignored before, issue 19).
    current = await state.reads.sync.datawallet_version(caller.address)
    if version < current:
        raise ApiError(
            400, OLD_VERSION, f"this device supports datawallet version {version}, not {current}"
        )
    rows = await state.reads.sync.modifications_after(caller.address, stored_index(local_index))
    mods = [
        {
            "id": r.id,
            "index": wire_index(r.idx),
            "objectIdentifier": r.object_identifier,
            "payloadCategory": r.payload_category,
            "createdAt": iso(r.created_at),
            "createdByDevice": r.created_by_device,
            "collection": r.collection,
            "type": r.type,
            "encryptedPayload": encode_content(r.encrypted_payload),
        }
        for r in rows
    ]
    return page.envelope(mods)


@router.post(
    "/Datawallet/Modifications",
    status_code=201,
    responses=documented(Envelope[CreatedModifications], 201, refuses=(403,)),
)
async def create_modifications(
    body: CreateModificationsRequest,
    caller: Authenticated,
    state: State,
    key: MaybeIdempotent,
    version: DatawalletVersion = 0,
) -> Any:
    if body.localIndex is not None and body.localIndex < -1:
        raise ApiError(400, INVALID, "localIndex must be -1 (nothing yet) or more")
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    mods = _modifications(body.modifications, idem)
    # Checked by the decider against the newest index (stored numbering; -1 → 0: none).
    local = stored_index(body.localIndex) if body.localIndex is not None else None
    await _send(
        state,
        caller,
        "AddDatawalletModifications",
        {"supported_datawallet_version": version, "local_index": local, "modifications": mods},
        idem,
    )
    written = await _written_modifications(state, caller, [m["id"] for m in mods])
    return {
        "result": {"newIndex": written[-1]["index"] if written else None, "modifications": written}
    }
