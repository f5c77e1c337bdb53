"""The commands, one frozen type per Avro schema: what a decider is asked.

Written by `python -m schemas.typegen` from schemas/avsc/; edit the schemas, not this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.records import DatawalletModificationIn, DeletionPeer, MessageRecipient, SyncResult


@dataclass(frozen=True, slots=True, kw_only=True)
class AcknowledgeMailbox:
    """Command: a device has handled its mailbox up to an index."""

    address: str
    device_id: str
    index: int
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AddDatawalletModifications:
    """Command: a device records changes of its identity's datawallet."""

    address: str
    device_id: str
    supported_datawallet_version: int
    # the newest modification index the device has (stored numbering, 0: none); null: not checked
    local_index: int | None = None
    modifications: tuple[DatawalletModificationIn, ...]
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AddDevice:
    """Command: register a further device of an existing identity."""

    challenge_id: str
    challenge_expires_at: datetime
    address: str
    device_id: str
    username: str
    password_hash: str
    created_by_device: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelIdentityDeletion:
    """Command: a device of an identity in its grace period cancels the deletion."""

    address: str
    deletion_process_id: str
    device_id: str
    peers: tuple[DeletionPeer, ...]
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeDevicePassword:
    """Command: a device replaces its own password (the API checked the old one and hashed the
    new one).
    """

    address: str
    device_id: str
    password_hash: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRelationship:
    """Command to a pair: one party acts on their relationship."""

    relationship_id: str
    # Accept, Reject, Revoke, Terminate, RequestReactivation, AcceptReactivation,
    # RejectReactivation, RevokeReactivation, Decompose
    action: str
    actor: str
    actor_device: str
    content: bytes | None = None
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectTemplate:
    """Command: a peer fetched a password-protected template with its password (the API checked
    it), so it may request a relationship against it later, as upstream Enmeshed allows only
    a peer that collected the template.
    """

    template_id: str
    collector: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateIdentity:
    """Command: create an identity with its first device, after its challenge was checked."""

    challenge_id: str
    challenge_expires_at: datetime
    address: str
    public_key: bytes
    client_id: str
    identity_version: int
    device_id: str
    username: str
    password_hash: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTemplate:
    """Command: publish a relationship template."""

    template_id: str
    owner: str
    owner_device: str
    content: bytes
    expires_at: datetime | None = None
    max_allocations: int | None = None
    for_identity: str | None = None
    password_hash: str | None = None
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateToken:
    """Command: store a token's (end-to-end encrypted) content until it expires."""

    token_id: str
    owner: str
    owner_device: str
    content: bytes
    expires_at: datetime
    for_identity: str | None = None
    password_hash: str | None = None
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteDevice:
    """Command: delete a device of an identity."""

    address: str
    device_id: str
    deleted_by_device: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteTemplate:
    """Command: the owner deletes its template."""

    template_id: str
    actor: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteToken:
    """Command: the owner deletes its token."""

    token_id: str
    actor: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalizeSyncRun:
    """Command: the device that started a sync run reports its results."""

    address: str
    device_id: str
    sync_run_id: str
    results: tuple[SyncResult, ...]
    new_datawallet_version: int | None = None
    modifications: tuple[DatawalletModificationIn, ...]
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishIdentityDeletion:
    """Command: a worker found an identity's grace period over; its decider erases it. Carries
    no address: the record key names the identity.
    """

    deletion_process_id: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetIdentity:
    """Command (issue 22): an aggregate's decider drops its state if the deleted identity owned
    it, else replaces the identity's address by the anonymous one. Names the identity only
    by the SHA-256 of its address: the command stays on the log, sealed with the system key.
    """

    address_hash: str
    anonymous: str
    deletion_process_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkMessageReceived:
    """Command: a recipient's device fetched the message."""

    message_id: str
    recipient: str
    # The message's sender as the API read it: the message decider never saw the message, whose
    # MessageSent the API appends itself.
    sender: str | None = None
    # The message's recipients as the API read them.
    recipients: tuple[str, ...] = ()
    recipient_device: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRelationship:
    """Command to a pair of identities: create the pending relationship (after allocation)."""

    template_id: str
    relationship_id: str
    from_address: str
    from_device: str
    to_address: str
    creation_content: bytes
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseAllocation:
    """Command to a template: give back an allocation whose relationship was refused."""

    template_id: str
    requester: str
    relationship_id: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRelationship:
    """Command to a template: a peer asks for a relationship with its owner."""

    template_id: str
    relationship_id: str
    requester: str
    requester_device: str
    creation_content: bytes
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage:
    """Command: one end-to-end encrypted body to 1..N recipients, each with its own wrapped
    key.
    """

    message_id: str
    sender: str
    sender_device: str
    body: bytes
    attachments: tuple[str, ...]
    recipients: tuple[MessageRecipient, ...]
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StartIdentityDeletion:
    """Command: an identity's device asks for its identity to be deleted after a grace period."""

    address: str
    identity_key: str
    deletion_process_id: str
    device_id: str
    grace_period_s: int
    peers: tuple[DeletionPeer, ...]
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StartSyncRun:
    """Command: a device starts a sync run over the identity's external events."""

    address: str
    device_id: str
    sync_run_id: str
    run_type: str
    head_index: int
    lock_seconds: int
    supported_datawallet_version: int
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadFile:
    """Command: register a file whose (end-to-end encrypted) content the API has stored in
    chunks.
    """

    file_id: str
    owner: str
    owner_device: str
    cipher_size: int
    cipher_hash: bytes
    content_sha256: bytes
    chunk_count: int
    expires_at: datetime
    encrypted_properties: bytes
    requested_at: datetime


Command = (
    AcknowledgeMailbox
    | AddDatawalletModifications
    | AddDevice
    | CancelIdentityDeletion
    | ChangeDevicePassword
    | ChangeRelationship
    | CollectTemplate
    | CreateIdentity
    | CreateTemplate
    | CreateToken
    | DeleteDevice
    | DeleteTemplate
    | DeleteToken
    | FinalizeSyncRun
    | FinishIdentityDeletion
    | ForgetIdentity
    | MarkMessageReceived
    | OpenRelationship
    | ReleaseAllocation
    | RequestRelationship
    | SendMessage
    | StartIdentityDeletion
    | StartSyncRun
    | UploadFile
)

TYPES: dict[str, type[Command]] = {
    "AcknowledgeMailbox": AcknowledgeMailbox,
    "AddDatawalletModifications": AddDatawalletModifications,
    "AddDevice": AddDevice,
    "CancelIdentityDeletion": CancelIdentityDeletion,
    "ChangeDevicePassword": ChangeDevicePassword,
    "ChangeRelationship": ChangeRelationship,
    "CollectTemplate": CollectTemplate,
    "CreateIdentity": CreateIdentity,
    "CreateTemplate": CreateTemplate,
    "CreateToken": CreateToken,
    "DeleteDevice": DeleteDevice,
    "DeleteTemplate": DeleteTemplate,
    "DeleteToken": DeleteToken,
    "FinalizeSyncRun": FinalizeSyncRun,
    "FinishIdentityDeletion": FinishIdentityDeletion,
    "ForgetIdentity": ForgetIdentity,
    "MarkMessageReceived": MarkMessageReceived,
    "OpenRelationship": OpenRelationship,
    "ReleaseAllocation": ReleaseAllocation,
    "RequestRelationship": RequestRelationship,
    "SendMessage": SendMessage,
    "StartIdentityDeletion": StartIdentityDeletion,
    "StartSyncRun": StartSyncRun,
    "UploadFile": UploadFile,
}
