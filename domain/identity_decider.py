"""The identity aggregate's rules: given its state and a command, the events or a rejection.

Pure functions, no I/O: the faust agent feeds them from its table, so the rules are tested
without Kafka and the agent stays a thin loop. `evolve` returns a new state; the one it is
given stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from domain import decision, sync_decider
from domain.decision import Rejection, unknown_command
from schemas.commands import (
    AcknowledgeMailbox,
    AddDatawalletModifications,
    AddDevice,
    CancelIdentityDeletion,
    ChangeDevicePassword,
    Command,
    CreateIdentity,
    DeleteDevice,
    FinalizeSyncRun,
    StartIdentityDeletion,
    StartSyncRun,
)
from schemas.events import (
    DatawalletModificationsAdded,
    DeviceDeleted,
    DevicePasswordChanged,
    DeviceRegistered,
    Event,
    IdentityCreated,
    IdentityDeletionCancelled,
    IdentityDeletionStarted,
    MailboxAcknowledged,
    SyncRunExpired,
    SyncRunFinalized,
    SyncRunStarted,
)

NOT_FOUND = decision.NOT_FOUND
FORBIDDEN = decision.FORBIDDEN
# A command of a device that was deleted after it got its token (the API checked it then).
DEVICE_GONE = Rejection(FORBIDDEN, "the calling device was deleted")

MAX_DEVICES = 50

CHALLENGE_EXPIRED = "error.platform.validation.device.challengeHasExpired"
CHALLENGE_USED = "error.platform.validation.device.challengeAlreadyUsed"

ONLY_ONE_DELETION = "error.platform.validation.device.onlyOneActiveDeletionProcessAllowed"
NOT_CANCELLABLE = "error.platform.validation.identityDeletionProcess.notCancellable"
INVALID_GRACE = "error.platform.validation.identityDeletionProcess.invalidGracePeriod"
IDENTITY_DELETING = "error.platform.validation.identity.isBeingDeleted"
# The API holds the client's choice within its own limits (api/routers/deletion_processes.py);
# the decider only refuses a period too short to cancel in.
MIN_GRACE_S = 1


# Not frozen, unlike the other states: the final step of a deletion
# (streams/deletion_final.py) records its progress on its own copy. The rules here
# never change a state they are given.
@dataclass
class IdentityState:
    address: str = ""
    data_key_id: str = ""
    version: int = 0
    devices: dict[str, str] = field(default_factory=dict)  # device id -> username
    # Challenges this identity used, until they expire (epoch seconds): a challenge proves
    # possession once. Kept here because the identity's decider is the single writer that
    # sees every use; expired ones are dropped, so the set stays small.
    used_challenges: dict[str, float] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)  # device id -> acknowledged index
    sync: dict[str, Any] = field(default_factory=sync_decider.empty)  # domain/sync_decider.py
    # The open deletion process (streams/deletion_final.py): id, status ("ToBeDeleted" in
    # the grace period, "Deleting" once the final step began), created_at / ends_at (epoch s).
    deletion: dict[str, Any] | None = None
    # Erased: what stays of a deleted identity is this marker (no address, no usernames), so
    # that its address cannot be created again and the final step is not run twice.
    deleted: bool = False

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def status(self) -> str:
        """Upstream's identity status: Active, ToBeDeleted, Deleting (then gone)."""
        if self.deleted:
            return "Deleted"
        return self.deletion["status"] if self.deletion else "Active"

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "data_key_id": self.data_key_id,
            "version": self.version,
            "devices": dict(self.devices),
            "used_challenges": dict(self.used_challenges),
            "cursors": dict(self.cursors),
            "sync": dict(self.sync),
            "deletion": dict(self.deletion) if self.deletion else None,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> IdentityState:
        if not raw:
            return cls()
        if raw.get("deleted"):
            return cls(version=raw["version"], deleted=True)
        deletion = raw.get("deletion")
        return cls(
            raw["address"],
            raw["data_key_id"],
            raw["version"],
            dict(raw["devices"]),
            dict(raw.get("used_challenges", {})),
            dict(raw.get("cursors", {})),
            dict(raw.get("sync") or sync_decider.empty()),
            dict(deletion) if deletion else None,
        )


# A used challenge is forgotten this long after a newer one's expiry: by then it has expired
# too (challenges live minutes), so forgetting it cannot let it be used again.
_KEEP_S = 24 * 3600.0


def decide(state: IdentityState, command: Command, now: datetime) -> list[Event] | Rejection:
    if state.deleted and not isinstance(command, CreateIdentity):
        return Rejection(NOT_FOUND, "identity not found")
    if state.status == "Deleting":
        return Rejection(IDENTITY_DELETING, "the identity is being deleted")
    match command:
        case StartIdentityDeletion():
            return _start_deletion(state, command, now)
        case CancelIdentityDeletion():
            return _cancel_deletion(state, command, now)
        case CreateIdentity():
            return _check_challenge(state, command, now) or _create(state, command)
        case AddDevice():
            return _check_challenge(state, command, now) or _add_device(state, command)
        case DeleteDevice():
            return _delete_device(state, command)
        case AcknowledgeMailbox():
            return _acknowledge(state, command)
        case ChangeDevicePassword():
            return _change_password(state, command)
        case StartSyncRun() | FinalizeSyncRun() | AddDatawalletModifications():
            if command.device_id not in state.devices:
                return DEVICE_GONE
            return _sync(state.sync, command, now)
    return unknown_command(command)


def _sync(
    sync: dict[str, Any],
    command: StartSyncRun | FinalizeSyncRun | AddDatawalletModifications,
    now: datetime,
) -> list[Event] | Rejection:
    match command:
        case StartSyncRun():
            return sync_decider.decide_start(sync, command, now)
        case FinalizeSyncRun():
            return sync_decider.decide_finalize(sync, command, now)
    return sync_decider.decide_modifications(sync, command, now)


def _check_challenge(
    state: IdentityState, cmd: CreateIdentity | AddDevice, now: datetime
) -> Rejection | None:
    # The API checked expiry on arrival; checked again here because a command may wait in
    # the log (a worker was down) past its challenge's expiry.
    if cmd.challenge_expires_at <= now:
        return Rejection(CHALLENGE_EXPIRED, "the challenge has expired; get a new one")
    if cmd.challenge_id in state.used_challenges:
        return Rejection(CHALLENGE_USED, "the challenge was used before; get a new one")
    return None


def _create(state: IdentityState, cmd: CreateIdentity) -> list[Event] | Rejection:
    if state.deleted:
        return Rejection(
            "error.platform.validation.identity.addressWasDeleted",
            "the identity of this public key was deleted; its address cannot be used again",
        )
    if state.exists:
        return Rejection(
            "error.platform.validation.identity.addressAlreadyExists",
            "an identity with this public key (and so this address) already exists",
        )
    return [
        IdentityCreated(
            address=cmd.address,
            public_key=cmd.public_key,
            client_id=cmd.client_id,
            identity_version=cmd.identity_version,
            created_at=cmd.requested_at,
        ),
        _registered(cmd, created_by=None),
    ]


def _add_device(state: IdentityState, cmd: AddDevice) -> list[Event] | Rejection:
    if not state.exists:
        return Rejection(NOT_FOUND, "identity not found")
    if cmd.created_by_device not in state.devices:
        return DEVICE_GONE
    if len(state.devices) >= MAX_DEVICES:
        return Rejection(
            "error.platform.quotaExhausted.devices",
            f"an identity can have at most {MAX_DEVICES} devices",
        )
    return [_registered(cmd, created_by=cmd.created_by_device)]


def _delete_device(state: IdentityState, cmd: DeleteDevice) -> list[Event] | Rejection:
    if not state.exists or cmd.device_id not in state.devices:
        return Rejection(NOT_FOUND, "device not found")
    if cmd.device_id == cmd.deleted_by_device:
        return Rejection(
            "error.platform.validation.device.deviceCannotDeleteItself",
            "a device cannot delete itself; delete it from another device",
        )
    return [
        DeviceDeleted(
            address=cmd.address,
            device_id=cmd.device_id,
            username=state.devices[cmd.device_id],
            deleted_at=cmd.requested_at,
            deleted_by_device=cmd.deleted_by_device,
        )
    ]


def _acknowledge(state: IdentityState, cmd: AcknowledgeMailbox) -> list[Event] | Rejection:
    if cmd.device_id not in state.devices:
        return DEVICE_GONE
    if cmd.index < 0:
        return Rejection(decision.INVALID_PROPERTY_VALUE, "index < 0")
    if cmd.index <= state.cursors.get(cmd.device_id, 0):
        return []  # a cursor only moves forward; an older acknowledgement changes nothing
    return [
        MailboxAcknowledged(
            address=cmd.address,
            device_id=cmd.device_id,
            index=cmd.index,
            acknowledged_at=cmd.requested_at,
        )
    ]


def _change_password(state: IdentityState, cmd: ChangeDevicePassword) -> list[Event] | Rejection:
    # The API checked the old password against the read model and hashed the new one; only
    # a device that still exists may change its own.
    if cmd.device_id not in state.devices:
        return DEVICE_GONE
    return [
        DevicePasswordChanged(
            address=cmd.address,
            device_id=cmd.device_id,
            username=state.devices[cmd.device_id],
            password_hash=cmd.password_hash,
            changed_at=cmd.requested_at,
        )
    ]


def _registered(cmd: CreateIdentity | AddDevice, created_by: str | None) -> DeviceRegistered:
    return DeviceRegistered(
        address=cmd.address,
        device_id=cmd.device_id,
        username=cmd.username,
        password_hash=cmd.password_hash,
        created_at=cmd.requested_at,
        created_by_device=created_by,
        challenge_id=cmd.challenge_id,
        challenge_expires_at=cmd.challenge_expires_at,
    )


def _start_deletion(
    state: IdentityState, cmd: StartIdentityDeletion, now: datetime
) -> list[Event] | Rejection:
    if not state.exists:
        return Rejection(NOT_FOUND, "identity not found")
    if cmd.device_id not in state.devices:
        return DEVICE_GONE
    if state.deletion is not None:
        return Rejection(ONLY_ONE_DELETION, "a deletion process is already active")
    if cmd.grace_period_s < MIN_GRACE_S:
        return Rejection(INVALID_GRACE, "the grace period is too short")
    return [
        IdentityDeletionStarted(
            address=cmd.address,
            identity_key=cmd.identity_key,
            deletion_process_id=cmd.deletion_process_id,
            device_id=cmd.device_id,
            created_at=cmd.requested_at,
            grace_period_ends_at=cmd.requested_at + timedelta(seconds=cmd.grace_period_s),
            peers=cmd.peers,
        )
    ]


def _cancel_deletion(
    state: IdentityState, cmd: CancelIdentityDeletion, now: datetime
) -> list[Event] | Rejection:
    if cmd.device_id not in state.devices:
        return DEVICE_GONE
    open_id = state.deletion["id"] if state.deletion else None
    if open_id != cmd.deletion_process_id:
        return Rejection(
            NOT_CANCELLABLE, "this deletion process is not active (cancelled or unknown)"
        )
    if finish_due(state, open_id, now):
        return Rejection(NOT_CANCELLABLE, "the grace period is over; the deletion runs")
    return [
        IdentityDeletionCancelled(
            address=cmd.address,
            identity_key=state.deletion["identity_key"] if state.deletion else "",
            deletion_process_id=open_id,
            device_id=cmd.device_id,
            cancelled_at=cmd.requested_at,
            peers=cmd.peers,
        )
    ]


def finish_due(state: IdentityState, process_id: str, now: datetime) -> bool:
    """Whether the final step of deletion `process_id` must run (again) now: its grace
    period is over and it was not cancelled, or it began and was cut short."""
    d = state.deletion
    if state.deleted or d is None or d["id"] != process_id:
        return False
    return bool(d["status"] == "Deleting" or now.timestamp() >= d["ends_at"])


def deleting(state: IdentityState) -> IdentityState:
    """The state written before the final step erases anything: from here on the identity
    takes no command, and a worker that takes over after a crash knows to finish."""
    assert state.deletion is not None
    return replace(
        state, deletion={**state.deletion, "status": "Deleting"}, version=state.version + 1
    )


def erased(state: IdentityState) -> IdentityState:
    """What stays once the final step is done: the marker, without address or usernames."""
    return IdentityState(version=state.version + 1, deleted=True)


def evolve(state: IdentityState, event: Event) -> IdentityState:
    """Apply one event: the same function rebuilds state on replay."""
    match event:
        case IdentityCreated():
            state = IdentityState(event.address, state.data_key_id, state.version)
        case DeviceRegistered():
            state = replace(state, devices={**state.devices, event.device_id: event.username})
            if event.challenge_id and event.challenge_expires_at:
                expiry = event.challenge_expires_at.timestamp()
                used = {c: e for c, e in state.used_challenges.items() if e > expiry - _KEEP_S}
                used[event.challenge_id] = expiry
                state = replace(state, used_challenges=used)
        case DeviceDeleted():
            state = replace(
                state,
                devices={d: u for d, u in state.devices.items() if d != event.device_id},
                cursors={d: i for d, i in state.cursors.items() if d != event.device_id},
            )
        case MailboxAcknowledged():
            state = replace(state, cursors={**state.cursors, event.device_id: event.index})
        case IdentityDeletionStarted():
            deletion = {
                "id": event.deletion_process_id,
                "status": "ToBeDeleted",
                "identity_key": event.identity_key,
                "created_at": event.created_at.timestamp(),
                "ends_at": event.grace_period_ends_at.timestamp(),
            }
            state = replace(state, deletion=deletion)
        case IdentityDeletionCancelled():
            state = replace(state, deletion=None)
        case (
            SyncRunStarted()
            | SyncRunExpired()
            | SyncRunFinalized()
            | DatawalletModificationsAdded()
        ):
            state = replace(state, sync=sync_decider.evolve(state.sync, event))
    return replace(state, version=state.version + 1)
