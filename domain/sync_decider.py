"""Sync runs and the datawallet, Enmeshed style, as rules of the identity aggregate.

External events are the identity's mailbox entries (same index). A sync run hands a device
the events after the identity's synced index, up to the mailbox head seen when it started
(at most `MAX_EVENTS_PER_RUN`), plus earlier events whose processing failed fewer than
`MAX_SYNC_ERRORS` times. One run at a time per identity; a run nobody finalizes expires and
the next start replaces it. Finalizing moves the synced index and records per-event errors.

The datawallet is the identity's own encrypted cross-device state: modifications with an
index per identity, and a version that devices must support.

State lives in `IdentityState.sync` (a plain dict, kept in the decider's table); `evolve`
returns a new one, so these rules are pure like the others.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from domain import decision
from domain.decision import Rejection
from schemas.commands import AddDatawalletModifications, FinalizeSyncRun, StartSyncRun
from schemas.events import (
    DatawalletModificationsAdded,
    Event,
    SyncRunExpired,
    SyncRunFinalized,
    SyncRunStarted,
)
from schemas.records import DatawalletModification

MAX_EVENTS_PER_RUN = 500
MAX_SYNC_ERRORS = 3
MAX_LOCK_SECONDS = 3600

RUNNING = "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning"
NOT_RUNNING = "error.platform.validation.syncRun.syncRunAlreadyFinalizedOrExpired"
OTHER_DEVICE = "error.platform.validation.syncRun.cannotFinalizeSyncRunStartedByAnotherDevice"
UNKNOWN_EVENT = "error.platform.validation.syncRun.externalEventNotInSyncRun"
OLD_VERSION = "error.platform.validation.datawallet.insufficientSupportedDatawalletVersion"
NOT_UP_TO_DATE = "error.platform.validation.datawallet.datawalletNotUpToDate"
DURING_RUN = (
    "error.platform.validation.datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun"
)
NOT_FOUND = decision.NOT_FOUND
DOWNGRADE = "error.platform.validation.datawallet.cannotDowngrade"


def empty() -> dict[str, Any]:
    return {
        "synced_index": 0,
        "errors": {},  # str(index) -> failed attempts
        "running": None,  # {id, device_id, to_index, retry_indexes, expires_at (epoch s)}
        "datawallet_index": 0,
        "datawallet_version": 0,
    }


def decide_start(sync: dict[str, Any], cmd: StartSyncRun, now: datetime) -> list[Event] | Rejection:
    running = sync["running"]
    events: list[Event] = []
    if running is not None:
        if running["expires_at"] > now.timestamp():
            return Rejection(RUNNING, "another sync run of this identity is running")
        events.append(
            SyncRunExpired(sync_run_id=running["id"], address=cmd.address, expired_at=now)
        )
    if cmd.supported_datawallet_version < sync["datawallet_version"]:
        return Rejection(OLD_VERSION, "this device supports an older datawallet version")
    retries: list[int]
    if cmd.run_type == "ExternalEventSync":
        retries = sorted(int(i) for i, n in sync["errors"].items() if n < MAX_SYNC_ERRORS)
        to_index = min(cmd.head_index, sync["synced_index"] + MAX_EVENTS_PER_RUN)
        if to_index <= sync["synced_index"] and not retries:
            return events  # "NoNewEvents": no run is created
    else:  # DatawalletVersionUpgrade: a run that only locks the identity for the upgrade
        retries, to_index = [], sync["synced_index"]
    lock = timedelta(seconds=min(max(cmd.lock_seconds, 10), MAX_LOCK_SECONDS))
    started = SyncRunStarted(
        sync_run_id=cmd.sync_run_id,
        address=cmd.address,
        device_id=cmd.device_id,
        run_type=cmd.run_type,
        from_index=sync["synced_index"],
        to_index=to_index,
        retry_indexes=tuple(retries),
        expires_at=now + lock,
        created_at=cmd.requested_at,
    )
    return [*events, started]


def decide_finalize(
    sync: dict[str, Any], cmd: FinalizeSyncRun, now: datetime
) -> list[Event] | Rejection:
    running = sync["running"]
    if running is None or running["id"] != cmd.sync_run_id:
        return Rejection(NOT_FOUND, "sync run not found or already finalized")
    if running["expires_at"] <= now.timestamp():
        return Rejection(NOT_RUNNING, "the sync run has expired; start a new one")
    if running["device_id"] != cmd.device_id:
        return Rejection(OTHER_DEVICE, "only the device that started a sync run ends it")
    in_run = set(running["retry_indexes"]) | set(
        range(sync["synced_index"] + 1, running["to_index"] + 1)
    )
    if any(r.index not in in_run for r in cmd.results):
        return Rejection(UNKNOWN_EVENT, "a result names an event outside this sync run")
    new_version = cmd.new_datawallet_version
    if new_version is not None and new_version < sync["datawallet_version"]:
        # A downgrade locked every device out for good: their writes need a version at
        # least the datawallet's, which no device then supported (issue 19).
        return Rejection(DOWNGRADE, "the datawallet cannot go back to an older version")
    finalized = SyncRunFinalized(
        sync_run_id=running["id"],
        address=cmd.address,
        device_id=cmd.device_id,
        synced_index=running["to_index"],
        errors=tuple(r for r in cmd.results if r.error_code),
        new_datawallet_version=new_version,
        finalized_at=cmd.requested_at,
    )
    out: list[Event] = [finalized]
    if cmd.modifications:
        out.append(_modifications(sync, cmd))
    return out


def decide_modifications(
    sync: dict[str, Any], cmd: AddDatawalletModifications, now: datetime
) -> list[Event] | Rejection:
    if cmd.supported_datawallet_version < sync["datawallet_version"]:
        return Rejection(OLD_VERSION, "this device supports an older datawallet version")
    # The device encrypts each payload under a key derived from the index it expects its
    # modification to get (the one after the newest it knows): if another device added
    # some meanwhile, those would be stored under indexes nobody could decrypt them with.
    # As upstream: the device must apply the newer modifications first, then push again.
    running = sync["running"]
    if running is not None and running["expires_at"] > now.timestamp():
        # A run's finalize adds modifications numbered from the index its device knew.
        return Rejection(DURING_RUN, "a sync run is active; push again when it is done")
    local = cmd.local_index
    if local is not None and local != sync["datawallet_index"]:
        return Rejection(NOT_UP_TO_DATE, "the datawallet has newer modifications; fetch them first")
    return [_modifications(sync, cmd)]


def _modifications(
    sync: dict[str, Any], cmd: FinalizeSyncRun | AddDatawalletModifications
) -> DatawalletModificationsAdded:
    first = sync["datawallet_index"] + 1
    return DatawalletModificationsAdded(
        address=cmd.address,
        device_id=cmd.device_id,
        modifications=tuple(
            DatawalletModification(**asdict(m), index=first + i)
            for i, m in enumerate(cmd.modifications)
        ),
        created_at=cmd.requested_at,
    )


def evolve(sync: dict[str, Any], event: Event) -> dict[str, Any]:
    sync = {**sync, "errors": dict(sync["errors"])}
    match event:
        case SyncRunExpired():
            sync["running"] = None
        case SyncRunStarted():
            sync["running"] = {
                "id": event.sync_run_id,
                "device_id": event.device_id,
                "to_index": event.to_index,
                "retry_indexes": list(event.retry_indexes),
                "expires_at": event.expires_at.timestamp(),
            }
        case SyncRunFinalized():
            running = sync["running"] or {}
            before = dict(sync["errors"])
            for index in running.get("retry_indexes", []):
                sync["errors"].pop(str(index), None)  # retried: succeeded unless failed again
            for error in event.errors:
                key = str(error.index)
                sync["errors"][key] = before.get(key, 0) + 1
            sync["synced_index"] = max(sync["synced_index"], event.synced_index)
            if event.new_datawallet_version is not None:
                sync["datawallet_version"] = event.new_datawallet_version
            sync["running"] = None
        case DatawalletModificationsAdded() if event.modifications:
            sync["datawallet_index"] = event.modifications[-1].index
    return sync
