"""The events, one frozen type per Avro schema: what a decider appends.

Written by `python -m schemas.typegen` from schemas/avsc/; edit the schemas, not this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.records import DatawalletModification, DeletionPeer, MessageRecipient, SyncResult


@dataclass(frozen=True, slots=True, kw_only=True)
class DatawalletModificationsAdded:
    """Event: datawallet modifications with their indexes."""

    address: str
    device_id: str
    modifications: tuple[DatawalletModification, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceDeleted:
    """Event: a device can no longer log in."""

    address: str
    device_id: str
    username: str
    deleted_at: datetime
    deleted_by_device: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DevicePasswordChanged:
    """Event: a device's password was replaced; its username logs in with the new one only."""

    address: str
    device_id: str
    username: str
    password_hash: str
    changed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegistered:
    """Event: a device can log in for its identity."""

    address: str
    device_id: str
    username: str
    password_hash: str
    created_at: datetime
    created_by_device: str | None = None
    # The challenge this registration used up (single use), null for none.
    challenge_id: str | None = None
    challenge_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileUploaded:
    """Event: a file exists until expires_at. Its content is in the blob store (Cassandra
    file_chunks), not in the log; content_sha256 pins it.
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
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityCreated:
    """Event: an identity exists, addressed by the hash of its signing key."""

    address: str
    public_key: bytes
    client_id: str
    identity_version: int
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityDeleted:
    """Event, the audit record of a crypto-shredded identity: sealed with the system key, so it
    outlives the identity's data key; keeps only SHA-256 hashes of the address and
    usernames. `data_key_hash` lets workers stop waiting for the destroyed key at once.
    """

    address_hash: str
    username_hashes: tuple[str, ...]
    data_key_hash: str
    identity_key: str
    deletion_process_id: str
    deletion_started_at: datetime
    deleted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityDeletionCancelled:
    """Event: the deletion of an identity was cancelled in its grace period (sealed with its
    own data key).
    """

    address: str
    identity_key: str
    deletion_process_id: str
    device_id: str
    cancelled_at: datetime
    peers: tuple[DeletionPeer, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityDeletionStarted:
    """Event: an identity will be deleted when its grace period ends (sealed with its own data
    key).
    """

    address: str
    identity_key: str
    deletion_process_id: str
    device_id: str
    created_at: datetime
    grace_period_ends_at: datetime
    peers: tuple[DeletionPeer, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxAcknowledged:
    """Event: a device's mailbox cursor moved forward."""

    address: str
    device_id: str
    index: int
    acknowledged_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageKeptForRecipient:
    """Event (issue 22): a message sent by an identity that is being deleted, recorded again
    for one of its recipients, sealed with that recipient's data key, so that the
    recipient's copy survives the shredding of the sender's key (live and in a replay). The
    sender is already anonymized; the body is the end-to-end ciphertext, unchanged.
    """

    message_id: str
    sender: str
    sender_device: str
    body: bytes
    attachments: tuple[str, ...]
    recipient: str
    encrypted_key: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    """Event: a recipient has the message (first fetch)."""

    message_id: str
    sender: str
    recipient: str
    recipient_device: str
    received_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageSent:
    """Event: a message was stored once and addressed to its recipients."""

    message_id: str
    sender: str
    sender_device: str
    body: bytes
    attachments: tuple[str, ...]
    recipients: tuple[MessageRecipient, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDeleted:
    """Event: the peer of a relationship was deleted at the end of its grace period; sealed
    with the data key of `address`, the remaining party, who keeps the relationship.
    """

    address: str
    relationship_id: str
    deleted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RelationshipChanged:
    """Event: a party acted on a relationship; status is the status after the action."""

    relationship_id: str
    from_address: str
    to_address: str
    action: str
    actor: str
    actor_device: str
    status: str
    old_status: str
    content: bytes | None = None
    reactivation_requested_by: str | None = None
    occurred_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RelationshipCreated:
    """Event: a pending relationship request between two identities."""

    relationship_id: str
    template_id: str
    from_address: str
    from_device: str
    to_address: str
    creation_content: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRunExpired:
    """Event: an abandoned sync run ran out of time and was replaced."""

    sync_run_id: str
    address: str
    expired_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRunFinalized:
    """Event: a sync run is done; the identity is synced up to synced_index."""

    sync_run_id: str
    address: str
    device_id: str
    synced_index: int
    errors: tuple[SyncResult, ...]
    new_datawallet_version: int | None = None
    finalized_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRunStarted:
    """Event: a sync run holds the external events after from_index up to to_index, plus
    retries.
    """

    sync_run_id: str
    address: str
    device_id: str
    run_type: str
    from_index: int
    to_index: int
    retry_indexes: tuple[int, ...]
    expires_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateAllocated:
    """Event: a peer holds one of the template's allocations."""

    template_id: str
    owner: str
    requester: str
    relationship_id: str
    allocated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateAllocationReleased:
    """Event: an allocation is free again."""

    template_id: str
    owner: str
    requester: str
    relationship_id: str
    released_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateCollected:
    """Event: a peer proved it knows a password-protected template's password."""

    template_id: str
    owner: str
    collector: str
    collected_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateCreated:
    """Event: a relationship template exists."""

    template_id: str
    owner: str
    owner_device: str
    content: bytes
    expires_at: datetime | None = None
    max_allocations: int | None = None
    for_identity: str | None = None
    password_hash: str | None = None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateDeleted:
    """Event: a template is gone; it takes no further requests."""

    template_id: str
    owner: str
    deleted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCreated:
    """Event: a token exists until expires_at."""

    token_id: str
    owner: str
    owner_device: str
    content: bytes
    expires_at: datetime
    for_identity: str | None = None
    password_hash: str | None = None
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenDeleted:
    """Event: a token is gone."""

    token_id: str
    owner: str
    deleted_at: datetime


Event = (
    DatawalletModificationsAdded
    | DeviceDeleted
    | DevicePasswordChanged
    | DeviceRegistered
    | FileUploaded
    | IdentityCreated
    | IdentityDeleted
    | IdentityDeletionCancelled
    | IdentityDeletionStarted
    | MailboxAcknowledged
    | MessageKeptForRecipient
    | MessageReceived
    | MessageSent
    | PeerDeleted
    | RelationshipChanged
    | RelationshipCreated
    | SyncRunExpired
    | SyncRunFinalized
    | SyncRunStarted
    | TemplateAllocated
    | TemplateAllocationReleased
    | TemplateCollected
    | TemplateCreated
    | TemplateDeleted
    | TokenCreated
    | TokenDeleted
)

TYPES: dict[str, type[Event]] = {
    "DatawalletModificationsAdded": DatawalletModificationsAdded,
    "DeviceDeleted": DeviceDeleted,
    "DevicePasswordChanged": DevicePasswordChanged,
    "DeviceRegistered": DeviceRegistered,
    "FileUploaded": FileUploaded,
    "IdentityCreated": IdentityCreated,
    "IdentityDeleted": IdentityDeleted,
    "IdentityDeletionCancelled": IdentityDeletionCancelled,
    "IdentityDeletionStarted": IdentityDeletionStarted,
    "MailboxAcknowledged": MailboxAcknowledged,
    "MessageKeptForRecipient": MessageKeptForRecipient,
    "MessageReceived": MessageReceived,
    "MessageSent": MessageSent,
    "PeerDeleted": PeerDeleted,
    "RelationshipChanged": RelationshipChanged,
    "RelationshipCreated": RelationshipCreated,
    "SyncRunExpired": SyncRunExpired,
    "SyncRunFinalized": SyncRunFinalized,
    "SyncRunStarted": SyncRunStarted,
    "TemplateAllocated": TemplateAllocated,
    "TemplateAllocationReleased": TemplateAllocationReleased,
    "TemplateCollected": TemplateCollected,
    "TemplateCreated": TemplateCreated,
    "TemplateDeleted": TemplateDeleted,
    "TokenCreated": TokenCreated,
    "TokenDeleted": TokenDeleted,
}
