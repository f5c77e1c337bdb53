"""`/api/v1/Files`: end-to-end encrypted files (attachments, documents) shared by id.

Upload is Enmeshed's multipart form: `content` (the ciphertext), `cipherHash` (the client's
hash of it, base64, handed back to readers to check), `expiresAt`, `encryptedProperties`
(optional, base64: name and type, encrypted by the client). The API stores the bytes in
256 KiB chunks in Cassandra first, then appends `UploadFile`; the file is readable once the
`FileUploaded` event is projected. A refused or failed command leaves only chunks that no
`files` row points to, and they expire with the file's TTL.

Enmeshed's client (`/api/v2`) also sends `owner` (its own address) and `ownerSignature`
(its device's signature over the plaintext hash, opaque here), and reads the file's bytes
at `GET Files/{id}` and its JSON at `GET Files/{id}/metadata`; `/api/v1` keeps this
project's original shape (`GET Files/{id}` the JSON, `.../Content` the bytes) for the
Connector. Both paths of both shapes answer under both versions except `GET Files/{id}`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from api import errors
from api.content import BASE64_PATTERN, INVALID, check_expiry, decode_content
from api.deps import Authenticated, State
from api.errors import ApiError
from api.idempotency import MaybeIdempotent, bind_key, new_resource_id
from api.schemas import (
    Envelope,
    FileMetadata,
    OwnershipTokenCheck,
    UploadedFile,
    documented,
)
from api.state import ApiState
from api.timestamps import iso
from api.versioning import encode_bytes, is_v1
from store.readmodels.sharing import StoredFile

router = APIRouter(prefix="/Files", tags=["files"])

FileId = Annotated[str, Path(pattern=r"^FIL[A-Za-z0-9]{17}$")]
CHUNK_BYTES = 256 * 1024
MAX_PROPERTIES_BYTES = 4096
NOT_FOUND = "error.platform.recordNotFound"
TOO_LARGE = "error.platform.validation.file.contentTooLarge"


# Packed into the stored `encrypted_properties` (opaque bytes to every other part): the
# `UploadFile` command has no field for the owner's signature yet, and this way it travels
# on the log with the file instead of in a second, API-written table. A stored value that
# does not start with the marker is plain properties (uploads without a signature).
_PACKED = b"\x00bbprops1\x00"
MAX_SIGNATURE_CHARS = 4096


def pack_properties(props: bytes, signature: str | None) -> bytes:
    if signature is None:
        return props
    raw = signature.encode()
    return _PACKED + len(raw).to_bytes(4, "big") + raw + props


def unpack_properties(stored: bytes) -> tuple[bytes, str | None]:
    if not stored.startswith(_PACKED):
        return stored, None
    rest = stored[len(_PACKED) :]
    size = int.from_bytes(rest[:4], "big")
    return rest[4 + size :], rest[4 : 4 + size].decode()


def ownership_token(state: ApiState, file_id: str) -> str:
    """The owner's proof for Enmeshed's ownership calls: derived from the backbone's signing
    seed and the file id, so it needs no storage (and cannot be regenerated, see README)."""
    key = hashlib.sha256(
        b"backbone/file-ownership-token\x00" + state.settings.signing_seed_b64.encode()
    )
    mac = hmac.new(key.digest(), file_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:15]).decode()


class OwnershipTokenRequest(BaseModel):
    ownershipToken: str = Field(min_length=1, max_length=100)


def _field(form: Any, name: str, required: bool = True) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, INVALID, f"{name}: required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, INVALID, f"{name}: must be a form field, not a file")
    return value


# The body is read by hand (a streamed multipart form), so FastAPI cannot see it: described
# here for the OpenAPI document.
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["content", "cipherHash", "expiresAt"],
                    "properties": {
                        "content": {
                            "type": "string",
                            "format": "binary",
                            "description": "the ciphertext (at most the file limit)",
                        },
                        "cipherHash": {
                            "type": "string",
                            "pattern": BASE64_PATTERN,
                            "maxLength": 172,
                            "description": "base64, <= 128 bytes",
                        },
                        "expiresAt": {"type": "string", "format": "date-time"},
                        "encryptedProperties": {
                            "type": "string",
                            "pattern": BASE64_PATTERN,
                            "maxLength": 5464,
                            "description": "base64, <= 4 KiB",
                        },
                        "owner": {"type": "string", "description": "the uploader's address"},
                        "ownerSignature": {"type": "string", "maxLength": MAX_SIGNATURE_CHARS},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses=documented(Envelope[UploadedFile], 201),
)
async def upload_file(
    request: Request, caller: Authenticated, state: State, key: MaybeIdempotent
) -> Any:
    form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    content = form.get("content")
    if not isinstance(content, UploadFile):
        raise ApiError(400, INVALID, "content: a file part is required")
    limit = state.settings.max_file_bytes
    # The form parser spooled the part to a temporary file (in memory up to 1 MiB): it is
    # read from there a chunk at a time, never whole (12 concurrent 10 MiB uploads took the
    # API to 360 MiB, issue 19).
    if content.size is not None and content.size > limit:
        raise ApiError(400, TOO_LARGE, f"content: at most {limit} bytes")
    cipher_hash = decode_content(_field(form, "cipherHash") or "", "cipherHash", 128)
    try:
        expires_at = check_expiry(datetime.fromisoformat(_field(form, "expiresAt") or ""))
    except ValueError as exc:
        raise ApiError(400, INVALID, "expiresAt: not an ISO 8601 time") from exc
    assert expires_at is not None
    raw_props = _field(form, "encryptedProperties", required=False)
    props = (
        decode_content(raw_props, "encryptedProperties", MAX_PROPERTIES_BYTES) if raw_props else b""
    )
    owner = _field(form, "owner", required=False)
    if owner is not None and owner != caller.address:
        raise ApiError(400, INVALID, "owner: must be the uploading identity's address")
    signature = _field(form, "ownerSignature", required=False)
    if signature is not None and len(signature) > MAX_SIGNATURE_CHARS:
        raise ApiError(400, INVALID, f"ownerSignature: at most {MAX_SIGNATURE_CHARS} characters")
    stored_props = pack_properties(props, signature)

    size, content_sha256 = await _measure(content, limit)
    idem = None
    if key is not None:
        # A multipart body's boundary changes with every attempt: the fields are the body.
        fields = [
            content_sha256,
            cipher_hash,
            props,
            (signature or "").encode(),
            (_field(form, "expiresAt") or "").encode(),
        ]
        fingerprint = hashlib.sha256(b"\x1f".join(fields)).hexdigest()[:32]
        fields_key = dataclasses.replace(key, fingerprint=fingerprint)
        idem = await bind_key(state.reads.idempotency, fields_key, caller.address)
    file_id, now = new_resource_id("FIL", idem), datetime.now(UTC)
    ttl = max(1, int((expires_at - now).total_seconds()) + 1)
    chunk_count = await _store_chunks(state, content, file_id, ttl)
    await state.bus.send(
        state.topics.file_commands,
        state.envelopes.aggregate_key("file", file_id),
        "UploadFile",
        {
            "file_id": file_id,
            "owner": caller.address,
            "owner_device": caller.device_id,
            "cipher_size": size,
            "cipher_hash": cipher_hash,
            "content_sha256": content_sha256,
            "chunk_count": chunk_count,
            "expires_at": expires_at,
            "encrypted_properties": stored_props,
            "requested_at": now,
        },
        idem,
    )
    if idem is not None:  # a repeat answers with the first request's time
        now = (await _row(state, file_id)).created_at
    return {
        "result": {
            "id": file_id,
            "createdAt": iso(now),
            "createdBy": caller.address,
            "createdByDevice": caller.device_id,
            "expiresAt": iso(expires_at),
            "cipherSize": size,
            "cipherHash": encode_bytes(cipher_hash),
            "owner": caller.address,
            "ownerSignature": signature,
            "ownershipToken": ownership_token(state, file_id),
        }
    }


# How long an upload waits for one of the process's upload slots before it is told to come
# back: uploads beyond the slots would only queue for Cassandra, which refused requests
# (`ConnectionBusy`), other users' included, when 2-4 uploads of 10 MiB wrote at once.
UPLOAD_SLOT_WAIT_S = 10.0


async def _measure(content: UploadFile, limit: int) -> tuple[int, bytes]:
    """The part's size and SHA-256, read a chunk at a time."""
    await content.seek(0)
    digest, size = hashlib.sha256(), 0
    while piece := await content.read(CHUNK_BYTES):
        size += len(piece)
        if size > limit:
            raise ApiError(400, TOO_LARGE, f"content: at most {limit} bytes")
        digest.update(piece)
    if size == 0:
        raise ApiError(400, INVALID, "content: must not be empty")
    return size, digest.digest()


async def _store_chunks(state: ApiState, content: UploadFile, file_id: str, ttl: int) -> int:
    """Write the part's chunks to Cassandra, one at a time per upload and at most
    `state.chunk_writes` at once in the process; wait at most UPLOAD_SLOT_WAIT_S for an
    upload slot, else 503 + Retry-After (nothing written: repeat freely). A store that
    pushes back anyway is a 503 too (api/errors.py)."""
    try:
        await asyncio.wait_for(state.upload_slots.acquire(), UPLOAD_SLOT_WAIT_S)
    except TimeoutError as exc:
        raise errors.unavailable(
            "too many uploads at once; try again shortly", retry_after_s=5, outcome="notApplied"
        ) from exc
    try:
        await content.seek(0)
        n = 0
        while piece := await content.read(CHUNK_BYTES):
            async with state.chunk_writes:
                # The one write the API makes itself: bytes the UploadFile event will pin.
                await state.reads.files.store_chunk(file_id, n, piece, ttl)
            n += 1
        return n
    finally:
        state.upload_slots.release()


async def _row(state: ApiState, file_id: str) -> StoredFile:
    row = await state.reads.files.get(file_id)
    if row is None:  # not uploaded, not projected yet, or expired
        raise ApiError(404, NOT_FOUND, "file not found")
    return row


# v1's metadata in the document; the v2 operation is rewritten to bytes (api/openapi.py).
@router.get("/{file_id}", response_model=None, responses=documented(Envelope[FileMetadata]))
async def get_file(file_id: FileId, caller: Authenticated, state: State) -> Any:
    """v2 (Enmeshed): the bytes; v1: the metadata, as this API first served them."""
    if is_v1():
        return await file_metadata(file_id, caller, state)
    return await file_content(file_id, caller, state)


@router.get("/{file_id}/metadata", responses=documented(Envelope[FileMetadata]))
async def file_metadata(file_id: FileId, caller: Authenticated, state: State) -> Any:
    """Whoever holds the id (it came in a message or a token) may read a file."""
    row = await _row(state, file_id)
    props, signature = unpack_properties(row.encrypted_properties or b"")
    return {
        "result": {
            "id": row.id,
            "createdAt": iso(row.created_at),
            "createdBy": row.owner,
            "createdByDevice": row.owner_device,
            "expiresAt": iso(row.expires_at),
            "cipherSize": row.cipher_size,
            "cipherHash": encode_bytes(row.cipher_hash),
            "encryptedProperties": encode_bytes(props) if props else None,
            "owner": row.owner,
            "ownerSignature": signature,
        }
    }


@router.post(
    "/{file_id}/ValidateOwnershipToken",
    responses=documented(Envelope[OwnershipTokenCheck], refuses=(403,)),
)
async def validate_ownership_token(
    file_id: FileId, body: OwnershipTokenRequest, caller: Authenticated, state: State
) -> Any:
    row = await _row(state, file_id)
    if row.owner != caller.address:
        raise ApiError(403, "error.platform.forbidden", "only the file's owner may do this")
    expected = ownership_token(state, file_id)
    return {"result": {"isValid": hmac.compare_digest(expected, body.ownershipToken)}}


@router.get("/{file_id}/Content")
async def file_content(file_id: FileId, caller: Authenticated, state: State) -> Response:
    row = await _row(state, file_id)
    data = await state.reads.files.content(file_id)
    if hashlib.sha256(data).digest() != row.content_sha256:
        # Chunks missing (a TTL ran out early) or damaged: never hand out wrong bytes.
        raise ApiError(503, "error.platform.fileUnavailable", "file content is unavailable")
    return Response(data, media_type="application/octet-stream")
