"""Typed success bodies for the OpenAPI document (issue 19): what the routes below answer,
field by field, so that the document is checked against the answers (the fuzz run's
response-schema check) instead of saying "an object".

Documentation only: the routes build their answers as before (`documented` adds the schema
to a route's `responses` without making FastAPI re-validate what it sends). A field the
document names and the answer lacks, or of another type, fails the fuzz run.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    result: T


class Pagination(BaseModel):
    pageNumber: int
    pageSize: int
    totalPages: int
    totalRecords: int


class PagedEnvelope(BaseModel, Generic[T]):
    result: list[T]
    pagination: Pagination


class ChallengeOut(BaseModel):
    id: str = Field(pattern=r"^CHL[A-Za-z0-9]{17}$")
    expiresAt: str
    createdBy: str | None
    createdByDevice: str | None


class CreatedDevice(BaseModel):
    id: str
    username: str
    createdAt: str


class CreatedIdentity(BaseModel):
    address: str
    createdAt: str
    device: CreatedDevice


class IdentityOut(BaseModel):
    address: str
    clientId: str
    publicKey: str
    identityVersion: int
    createdAt: str


class Created(BaseModel):
    id: str
    createdAt: str


class TokenOut(BaseModel):
    id: str
    createdBy: str
    createdByDevice: str
    content: str
    createdAt: str
    expiresAt: str
    forIdentity: str | None
    passwordProtected: bool


class TemplateOut(BaseModel):
    id: str
    createdBy: str
    createdByDevice: str
    maxNumberOfAllocations: int | None
    expiresAt: str | None
    forIdentity: str | None
    content: str
    createdAt: str
    passwordProtected: bool


class MailboxEntry(BaseModel):
    index: int = Field(ge=1)
    type: str
    payload: Any
    createdAt: str


class MailboxPage(BaseModel):
    result: list[MailboxEntry]
    since: int = Field(ge=0, description="the cursor the page starts after")
    last: int = Field(ge=0, description="the index to ask after next")


class DeviceCursor(BaseModel):
    deviceId: str
    index: int
    updatedAt: str


class Cursors(BaseModel):
    index: int = Field(description="the calling device's acknowledged index")
    devices: list[DeviceCursor]


class Datawallet(BaseModel):
    version: int = Field(ge=0)


def documented(model: Any, status: int = 200, description: str = "Success") -> dict[int | str, Any]:
    """`responses=` for a route whose answer is `model`."""
    return {status: {"model": model, "description": description}}
