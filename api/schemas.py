"""Typed success bodies for the OpenAPI document (issue 19): what every route answers,
field by field, so that the document is checked against the answers (the fuzz run's
response-schema check, tests/integration/test_openapi_responses.py) instead of saying "an
object".

Documentation only: the routes build their answers as before (`documented` adds the schema
to a route's `responses` without making FastAPI filter what it sends through the model, so
a field a model forgot cannot silently vanish from the wire). The models forbid fields they
do not name: an answer with a field the document lacks, or without one it names, or of
another type, fails those checks. Byte fields are base64 in the calling version's alphabet
(api/versioning.py), described by one pattern that takes both.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from api.content import BASE64_PATTERN
from domain.relationship_decider import Status as RelationshipStatus

T = TypeVar("T")


class Out(BaseModel):
    """An answer's object: exactly the fields named (`additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")


# Base64 (either alphabet, api/content.py) and Enmeshed ids, as the answers write them.
Bytes = Annotated[str, Field(pattern=BASE64_PATTERN)]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]  # UTC, ms, `Z`


def _id(prefix: str) -> Any:
    return Field(pattern=rf"^{prefix}[A-Za-z0-9]{{17}}$")


class Envelope(Out, Generic[T]):
    result: T


class Pagination(Out):
    pageNumber: int
    pageSize: int
    totalPages: int
    totalRecords: int


class PagedEnvelope(Out, Generic[T]):
    result: list[T]
    pagination: Pagination


class ChallengeOut(Out):
    id: str = Field(pattern=r"^CHL[A-Za-z0-9]{17}$")
    expiresAt: Time
    createdBy: str | None
    createdByDevice: str | None


class CreatedDevice(Out):
    id: str
    username: str
    createdAt: Time


class CreatedIdentity(Out):
    address: str
    createdAt: Time
    device: CreatedDevice


class IdentityOut(Out):
    address: str
    clientId: str
    publicKey: str
    identityVersion: int
    createdAt: Time
    # Issue 22 (identity deletion), as upstream's GetOwnIdentity.
    status: Literal["Active", "ToBeDeleted", "Deleting"] = "Active"
    deletionGracePeriodEndsAt: Time | None = None


class Created(Out):
    id: str
    createdAt: Time


class TokenOut(Out):
    id: str
    createdBy: str
    createdByDevice: str
    content: Bytes
    createdAt: Time
    expiresAt: Time
    forIdentity: str | None
    passwordProtected: bool


class TemplateOut(Out):
    id: str
    createdBy: str
    createdByDevice: str
    maxNumberOfAllocations: int | None
    expiresAt: Time | None
    forIdentity: str | None
    content: Bytes
    createdAt: Time
    passwordProtected: bool


class MailboxEntry(Out):
    index: int = Field(ge=1)
    type: str
    payload: Any
    createdAt: Time


class MailboxPage(Out):
    result: list[MailboxEntry]
    since: int = Field(ge=0, description="the cursor the page starts after")
    last: int = Field(ge=0, description="the index to ask after next")


class DeviceCursor(Out):
    deviceId: str
    index: int
    updatedAt: Time


class Cursors(Out):
    index: int = Field(description="the calling device's acknowledged index")
    devices: list[DeviceCursor]


class Datawallet(Out):
    version: int = Field(ge=0)


class Health(Out):
    status: Literal["ok"]


class Readiness(Out):
    kafka: Literal["ok", "unreachable"]
    cassandra: Literal["ok", "unreachable"]


class RegisteredDevice(Out):
    id: str = _id("DVC")
    username: str
    createdAt: Time
    createdByDevice: str


class ListedDevice(Out):
    id: str = _id("DVC")
    username: str
    createdAt: Time
    # None for an identity's first device, which no device created.
    createdByDevice: str | None


class _File(Out):
    """What the upload's answer and the metadata share."""

    id: str = _id("FIL")
    createdAt: Time
    createdBy: str
    createdByDevice: str
    expiresAt: Time
    cipherSize: int = Field(ge=1)
    cipherHash: Bytes
    owner: str
    ownerSignature: str | None


class UploadedFile(_File):
    ownershipToken: str = Field(description="the owner's proof for the ownership calls")


class FileMetadata(_File):
    encryptedProperties: Bytes | None


class OwnershipTokenCheck(Out):
    isValid: bool


class MessageRecipient(Out):
    address: str
    encryptedKey: Bytes
    receivedAt: Time | None = Field(description="the recipient's first read")
    receivedByDevice: str | None


class Attachment(Out):
    id: str = _id("FIL")


class MessageOut(Out):
    id: str = _id("MSG")
    createdBy: str
    createdByDevice: str
    createdAt: Time
    body: Bytes
    attachments: list[Attachment]
    recipients: list[MessageRecipient]


class AuditEntry(Out):
    reason: str
    oldStatus: RelationshipStatus | None = Field(description="null for the request itself")
    newStatus: RelationshipStatus
    createdBy: str
    createdByDevice: str | None
    createdAt: Time


class PeerDeletionInfo(Out):
    """Issue 22: the other party of a relationship is to be deleted, or was (upstream's)."""

    deletionStatus: Literal["ToBeDeleted", "Deleted"]
    deletionDate: Time


class RelationshipOut(Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = _id("REL")
    relationshipTemplateId: str = _id("RLT")
    from_: str = Field(alias="from")
    to: str
    status: RelationshipStatus
    creationContent: Bytes | None
    creationResponseContent: Bytes | None
    reactivationRequestedBy: str | None
    createdAt: Time
    auditLog: list[AuditEntry]
    peerDeletionInfo: PeerDeletionInfo | None = None  # issue 22


class SyncRunOut(Out):
    id: str = _id("SYN")
    syncRunType: Literal["ExternalEventSync", "DatawalletVersionUpgrade"]
    expiresAt: Time
    index: int = Field(ge=0, description="the last mailbox index the run covers")
    createdAt: Time
    createdBy: str
    createdByDevice: str
    eventCount: int = Field(ge=0)
    status: Literal["Running", "Finalized", "Expired"]


class StartedSyncRun(Out):
    status: Literal["Created", "NoNewEvents"]
    syncRun: SyncRunOut | None = Field(description="null when there was nothing to sync (200)")


class ExternalEvent(Out):
    id: str = Field(pattern=r"^EXT[0-9]{17}$")
    type: str
    index: int = Field(ge=1)
    createdAt: Time
    syncErrorCount: int = Field(ge=0)
    payload: dict[str, Any]


class WrittenModification(Out):
    id: str = _id("DWM")
    index: int = Field(ge=0)
    createdAt: Time


class FinalizedSyncRun(Out):
    newDatawalletModificationIndex: int | None
    datawalletModifications: list[WrittenModification]
    newUnsyncedExternalEventsExist: bool


class CreatedModifications(Out):
    newIndex: int | None
    modifications: list[WrittenModification]


class Modification(Out):
    id: str = _id("DWM")
    index: int = Field(ge=0)
    objectIdentifier: str
    payloadCategory: str | None
    createdAt: Time
    createdByDevice: str
    collection: str
    type: Literal["Create", "Update", "Delete", "CacheChanged"]
    encryptedPayload: Bytes | None


# What each error status means, for the document (api/openapi.py) and `refuses`.
ERROR_DESCRIPTIONS = {
    "400": "Invalid request: a parameter, header or body field (`error.code` says which rule)",
    "401": "No valid bearer token, or its device was deleted",
    "403": "Not allowed: a password is needed or wrong, the resource is another's, or the "
    "calling device was deleted meanwhile",
    "404": "No such resource, or not visible to the caller",
    "405": "Method not allowed on this path (`Allow` lists the allowed ones)",
    "409": "A request with this Idempotency-Key is still running; see `Retry-After`",
    "411": "A body without Content-Length",
    "413": "The body is larger than this route takes",
    "422": "An Idempotency-Key used before with another body",
    "429": "Too many failed password checks, or open streams; see `Retry-After`",
    "503": "A store is unavailable or pushes back; see `Retry-After` and `writeOutcome`",
}

# The refusals of an identity's decider (domain/identity_decider.py) for a command of the
# calling device: the device was deleted meanwhile (403), the identity is gone (404).
IDENTITY_COMMAND = (403, 404)


def documented(
    model: Any, status: int = 200, description: str = "Success", refuses: tuple[int, ...] = ()
) -> dict[int | str, Any]:
    """`responses=` for a route whose answer is `model`; `refuses` names the error statuses
    that api/openapi.py cannot read off the route (a decider's or a check's refusal)."""
    return {status: {"model": model, "description": description}, **refusals(*refuses)}


def refusals(*codes: int) -> dict[int | str, Any]:
    """`responses=` for error statuses only (see `documented`)."""
    return {code: {"description": ERROR_DESCRIPTIONS[str(code)]} for code in codes}
