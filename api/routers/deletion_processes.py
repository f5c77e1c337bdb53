"""`/api/v{1,2}/Identities/Self/DeletionProcesses`: an identity asks to be deleted (issue 22).

As upstream's owner-started process: the identity's status goes Active -> ToBeDeleted for a
grace period (14 days unless the client asks for 1 to 90), during which its devices log in
as before and may cancel; its peers learn of it in their sync (PeerToBeDeleted,
PeerDeletionCancelled). When the period ends a worker erases it for good
(streams/deletion_final.py). Starting and cancelling are commands to the identity's
decider (domain/identity_decider.py), which keeps one open process at a time.

`is_deleted` answers `GET Identities/IsDeleted?username=` (api/routers/identities.py): an
identity that lost its login asks whether it was deleted, and when.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict

from api.deps import Authenticated, State
from api.errors import ApiError
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.schemas import IDENTITY_COMMAND, refusals
from api.state import ApiState
from api.timestamps import iso
from backbone.deletion_policy import (
    GRACE_OUT_OF_RANGE,
    MAX_DAYS,
    MIN_DAYS,
    DeletionSettings,
    grace_period_s,
    sha256_hex,
)
from store.readmodels.deletion import DeletionProcess as StoredProcess

router = APIRouter(prefix="/Identities/Self/DeletionProcesses", tags=["identities"])

ProcessId = Annotated[str, Path(pattern=r"^IDP[A-Za-z0-9]{17}$")]

_SETTINGS = DeletionSettings.from_env()


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartDeletionRequest(_Out):
    # Checked in the route, not by the schema, so that an out-of-range value gets its own
    # machine-readable code.
    lengthOfGracePeriodInDays: int | None = None


class DeletionProcess(_Out):
    id: str
    status: Literal["Active", "Cancelled"]
    createdAt: str
    createdByDevice: str
    gracePeriodEndsAt: str
    cancelledAt: str | None = None
    cancelledByDevice: str | None = None


class DeletionProcessResult(_Out):
    result: DeletionProcess


class DeletionProcessList(_Out):
    result: list[DeletionProcess]


@router.post(
    "", status_code=201, response_model=DeletionProcessResult, responses=refusals(*IDENTITY_COMMAND)
)
async def start_deletion(
    caller: Authenticated,
    state: State,
    key: MaybeIdempotent,
    body: Annotated[StartDeletionRequest | None, Body()] = None,
) -> DeletionProcessResult:
    days = body.lengthOfGracePeriodInDays if body is not None else None
    grace_s = grace_period_s(days, _SETTINGS)
    if grace_s is None:
        raise ApiError(
            400, GRACE_OUT_OF_RANGE, f"the grace period is {MIN_DAYS} to {MAX_DAYS} days"
        )
    idem = await bind_key(state.reads.idempotency, key, caller.address)
    process_id = new_resource_id("IDP", idem)
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "StartIdentityDeletion",
        {
            "address": caller.address,
            "identity_key": state.envelopes.aggregate_key("identity", caller.address),
            "deletion_process_id": process_id,
            "device_id": caller.device_id,
            "grace_period_s": grace_s,
            "peers": await _peers(state, caller.address),
            "requested_at": datetime.now(UTC),
        },
        idem,
    )
    return DeletionProcessResult(result=await _process(state, caller.address, process_id))


@router.get("", response_model=DeletionProcessList)
async def list_deletions(caller: Authenticated, state: State) -> DeletionProcessList:
    processes = await state.reads.deletion.processes_of(caller.address)
    return DeletionProcessList(result=[_dto(p) for p in processes])


@router.get("/{process_id}", response_model=DeletionProcessResult)
async def get_deletion(
    process_id: ProcessId, caller: Authenticated, state: State
) -> DeletionProcessResult:
    return DeletionProcessResult(result=await _process(state, caller.address, process_id))


@router.put(
    "/{process_id}/Cancel",
    response_model=DeletionProcessResult,
    responses=refusals(*IDENTITY_COMMAND),
)
async def cancel_deletion(
    process_id: ProcessId, caller: Authenticated, state: State
) -> DeletionProcessResult:
    await _process(state, caller.address, process_id)  # 404 for another identity's
    await state.bus.send(
        state.topics.identity_commands,
        state.envelopes.aggregate_key("identity", caller.address),
        "CancelIdentityDeletion",
        {
            "address": caller.address,
            "deletion_process_id": process_id,
            "device_id": caller.device_id,
            "peers": await _peers(state, caller.address),
            "requested_at": datetime.now(UTC),
        },
    )
    return DeletionProcessResult(result=await _process(state, caller.address, process_id))


async def _process(state: ApiState, address: str, process_id: str) -> DeletionProcess:
    row = await state.reads.deletion.process(address, process_id)
    if row is None:
        raise ApiError(404, "error.platform.recordNotFound", "deletion process not found")
    return _dto(row)


def _dto(row: StoredProcess) -> DeletionProcess:
    return DeletionProcess(
        id=row.id,
        status=row.status,
        createdAt=iso(row.created_at),
        createdByDevice=row.created_by_device,
        gracePeriodEndsAt=iso(row.grace_period_ends_at),
        cancelledAt=iso(row.cancelled_at) if row.cancelled_at else None,
        cancelledByDevice=row.cancelled_by_device,
    )


async def _peers(state: ApiState, address: str) -> list[dict[str, str]]:
    """Who must be told: the other party of each of the identity's relationships."""
    links = await state.reads.relationships.peers_of(address)
    return [{"address": link.peer, "relationship_id": link.relationship_id} for link in links]


async def is_deleted(state: ApiState, username: str) -> tuple[bool, str | None]:
    """(deleted, when) for `Identities/IsDeleted`: a username that still logs in is not
    deleted, even in its grace period (it may cancel); one that was erased is found by its
    hash in the audit record (streams/deletion_readmodels.py)."""
    if await state.reads.identities.login(username) is not None:
        return False, None
    gone = await state.reads.deletion.username_deleted_at(sha256_hex(username))
    return (True, iso(gone)) if gone is not None else (False, None)


async def own_status(state: ApiState, address: str) -> tuple[str, str | None]:
    """(status, grace period's end) for `GET Identities/Self`, as upstream's identity status:
    ToBeDeleted while an open process's grace period runs, Deleting once it is over and
    the final step is due (the identity still answers until its devices are erased)."""
    for row in await state.reads.deletion.processes_of(address):
        if row.status == "Active":
            ends = row.grace_period_ends_at.replace(tzinfo=UTC)
            return ("ToBeDeleted" if ends > datetime.now(UTC) else "Deleting"), iso(ends)
    return "Active", None


async def peer_deletion_info(
    state: ApiState, relationship_id: str, viewer: str
) -> dict[str, str] | None:
    """Upstream's `peerDeletionInfo` of a relationship as `viewer` sees it: set when the
    other party is to be deleted or was deleted (streams/deletion_readmodels.py)."""
    row = await state.reads.deletion.peer_deletion(relationship_id, viewer)
    if row is None:
        return None
    return {"deletionStatus": row.status, "deletionDate": iso(row.deletion_date)}
