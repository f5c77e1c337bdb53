"""The Connector's REST API for the organization's business systems.

Plaintext JSON in and out; every request carries the API key in `X-API-KEY`. Paths follow
the Enmeshed Connector's (`/api/v2/...`). Errors have the backbone's shape:
`{"error": {"code", "message", ...}}`, 4xx with a machine-readable code. A backbone error
is passed on with its own code (a 5xx of the backbone becomes 502).
"""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from connector import crypto
from connector.backbone_client import BackboneError
from connector.errors import ConnectorError, Damaged, NotFound, Unauthorized, Unavailable
from connector.service import ConnectorService
from schemas.errors import (
    INVALID_CONTENT_TYPE,
    INVALID_PROPERTY_VALUE,
    error_body,
    http_error_code,
)

VERSION = "0.1.0"
MAX_CONTENT_CHARS = 24_000  # sealed, base64'd and wrapped, this stays under the backbone's 32 KiB

Content = Annotated[Any, Field(description="any JSON value")]
RelationshipId = Annotated[str, Path(pattern=r"^REL[A-Za-z0-9]{17}$")]
TemplateId = Annotated[str, Path(pattern=r"^RLT[A-Za-z0-9]{17}$")]
MessageId = Annotated[str, Path(pattern=r"^MSG[A-Za-z0-9]{17}$")]
FileId = Annotated[str, Path(pattern=r"^FIL[A-Za-z0-9]{17}$")]
# What the backbone takes (BACKBONE_MAX_FILE_BYTES, 10 MiB by default) less the seal.
MAX_FILE_BYTES = 10 * 1024 * 1024 - crypto.SEAL_OVERHEAD
MAX_ATTACHMENTS = 20
STEPS = ("Accept", "Reject", "Revoke", "Terminate")


class CreateTemplate(BaseModel):
    content: Content
    expiresAt: datetime | None = None
    maxNumberOfAllocations: int | None = Field(default=None, ge=1, le=1000)


class CreateToken(BaseModel):
    content: Content
    expiresAt: datetime


class LoadReference(BaseModel):
    reference: str = Field(min_length=10, max_length=200)


class CreateRelationship(BaseModel):
    templateId: str = Field(pattern=r"^RLT[A-Za-z0-9]{17}$")
    creationContent: Content = None


class AnswerRelationship(BaseModel):
    content: Content = None


FileRef = Annotated[str, Field(pattern=r"^FIL[A-Za-z0-9]{17}$")]


class SendMessage(BaseModel):
    recipients: list[str] = Field(min_length=1, max_length=50)
    content: Content
    attachments: list[FileRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


def _service(request: Request) -> ConnectorService:
    service: ConnectorService = request.app.state.service
    return service


def _check_key(request: Request) -> None:
    given = request.headers.get("x-api-key", "")
    expected: str = request.app.state.api_key
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("error.connector.unauthorized", "missing or wrong X-API-KEY")


Service = Annotated[ConnectorService, Depends(_service)]


def _size_checked(content: Any) -> Any:
    if len(json.dumps(content)) > MAX_CONTENT_CHARS:
        raise ConnectorError(
            "error.connector.contentTooLarge",
            f"content is over {MAX_CONTENT_CHARS} characters of JSON",
        )
    return content


router = APIRouter(prefix="/api/v2", dependencies=[Depends(_check_key)])


@router.get("/Account/IdentityInfo")
async def identity_info(service: Service) -> Any:
    return {"result": {"address": service.address, "deviceId": service.identity.device_id}}


@router.post("/Account/Sync")
async def sync(request: Request) -> Any:
    """Catch up with the mailbox now (the live stream does so anyway); answers how many
    entries were new."""
    consumer = request.app.state.consumer
    if consumer is None:
        raise Unavailable("error.connector.notSyncing", "no mailbox consumer runs")
    return {"result": {"handledEntries": await consumer.catch_up()}}


@router.post("/RelationshipTemplates/Own", status_code=201)
async def create_template(body: CreateTemplate, service: Service) -> Any:
    created = await service.templates.create(
        _size_checked(body.content), body.expiresAt, body.maxNumberOfAllocations
    )
    return {"result": created}


@router.post("/RelationshipTemplates/Own/{template_id}/Token", status_code=201)
async def template_token(template_id: TemplateId, service: Service) -> Any:
    return {"result": await service.templates.token_for(template_id)}


@router.get("/RelationshipTemplates")
async def templates(service: Service) -> Any:
    return {"result": service.templates.all()}


@router.get("/RelationshipTemplates/{template_id}")
async def template(template_id: TemplateId, service: Service) -> Any:
    return {"result": service.templates.get(template_id)}


@router.post("/Tokens/Own", status_code=201)
async def create_token(body: CreateToken, service: Service) -> Any:
    return {
        "result": await service.templates.create_token(_size_checked(body.content), body.expiresAt)
    }


@router.get("/Tokens")
async def tokens(service: Service) -> Any:
    return {"result": service.templates.tokens()}


@router.post("/Peer/Load", status_code=201)
async def load_peer_object(body: LoadReference, service: Service) -> Any:
    """A peer's template (from a template or token reference, e.g. from a QR code) or a
    content token: fetched, decrypted and kept."""
    return {"result": await service.templates.load_reference(body.reference)}


@router.post("/Relationships", status_code=201)
async def request_relationship(body: CreateRelationship, service: Service) -> Any:
    content = _size_checked(body.creationContent)
    return {"result": await service.relationships.request(body.templateId, content)}


@router.get("/Relationships")
async def relationships(service: Service, status: str | None = None) -> Any:
    return {"result": service.relationships.all(status)}


@router.get("/Relationships/{relationship_id}")
async def relationship(relationship_id: RelationshipId, service: Service) -> Any:
    return {"result": service.relationships.get(relationship_id)}


@router.put("/Relationships/{relationship_id}/{step}")
async def relationship_step(
    relationship_id: RelationshipId,
    step: str,
    service: Service,
    body: AnswerRelationship | None = None,
) -> Any:
    if step not in STEPS:
        raise ConnectorError("error.connector.unknownStep", f"step is one of {STEPS}")
    content = _size_checked(body.content) if body else None
    return {"result": await service.relationships.step(relationship_id, step, content)}


@router.post("/Files/Own", status_code=201)
async def upload_file(
    service: Service,
    file: Annotated[UploadFile, File(description="the plaintext file")],
    expiresAt: Annotated[datetime, Form()],
    title: Annotated[str | None, Form(max_length=200)] = None,
) -> Any:
    data = await file.read(MAX_FILE_BYTES + 1)
    if not data:
        raise ConnectorError("error.connector.emptyFile", "the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ConnectorError(
            "error.connector.fileTooLarge", f"files are at most {MAX_FILE_BYTES} bytes"
        )
    name = title or file.filename or "file"
    mimetype = file.content_type or "application/octet-stream"
    return {"result": await service.files.upload(data, name, mimetype, expiresAt)}


@router.get("/Files")
async def files(service: Service) -> Any:
    """Own uploads and files attached to received messages."""
    return {"result": service.files.all()}


@router.get("/Files/{file_id}")
async def file_metadata(file_id: FileId, service: Service) -> Any:
    return {"result": service.files.get(file_id)}


@router.get("/Files/{file_id}/Download")
async def download_file(file_id: FileId, service: Service) -> Response:
    data, meta = await service.files.download(file_id)
    disposition = f"attachment; filename*=UTF-8''{quote(meta['name'])}"
    return Response(data, media_type=meta["mimetype"], headers={"Content-Disposition": disposition})


@router.post("/Messages", status_code=201)
async def send_message(body: SendMessage, service: Service) -> Any:
    sent = await service.messages.send(
        body.recipients, _size_checked(body.content), body.attachments
    )
    return {"result": sent}


@router.get("/Messages")
async def messages(
    service: Service,
    peer: str | None = None,
    direction: Annotated[str | None, Query(pattern="^(incoming|outgoing)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    """Oldest first, `limit` at a time from `offset`."""
    return {"result": service.messages.page(peer, direction, limit, offset)}


@router.get("/Messages/{message_id}")
async def message(message_id: MessageId, service: Service) -> Any:
    return {"result": service.messages.get(message_id)}


# The HTTP status of each kind of refusal; any other kind is the caller's to fix (400).
STATUS: dict[type[ConnectorError], int] = {
    Unauthorized: 401,
    NotFound: 404,
    Damaged: 502,
    Unavailable: 503,
}


def _status(refusal: ConnectorError) -> int:
    return next((s for kind, s in STATUS.items() if isinstance(refusal, kind)), 400)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def create_app(service: ConnectorService, api_key: str, lifespan: Any = None) -> FastAPI:
    # The docs' files come with the Connector (fastapi-offline), not from a CDN.
    app = FastAPIOffline(title="Connector", version=VERSION, lifespan=lifespan)
    app.state.service = service
    app.state.api_key = api_key
    app.state.consumer = None  # set by `connector serve`

    @app.exception_handler(ConnectorError)
    async def _refused(_: Request, exc: ConnectorError) -> JSONResponse:
        return _error(_status(exc), exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and wrong methods, in the same error shape as everything else.
        status = exc.status_code
        return _error(status, http_error_code(status), str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(BackboneError)
    async def _backbone(_: Request, exc: BackboneError) -> JSONResponse:
        # The backbone refusing the Connector's own login (401) or failing (5xx) is not the
        # caller's fault: a gateway error.
        status = exc.status if 400 <= exc.status < 500 and exc.status != 401 else 502
        return _error(status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A JSON body sent without `Content-Type: application/json` reaches the model as
        # bytes, and the generic message would only say "invalid request".
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body_expected = any(e.get("loc", ())[:1] == ("body",) for e in exc.errors())
        json_or_form = kind.endswith("json") or kind.startswith("multipart/")
        if body_expected and kind and not json_or_form:  # no Content-Type is read as JSON
            return _error(
                400,
                INVALID_CONTENT_TYPE,
                f"send the body as JSON with the header Content-Type: application/json "
                f"(this request had {kind})",
            )
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = first.get("msg", "invalid request")
        return _error(400, INVALID_PROPERTY_VALUE, f"{where}: {message}" if where else message)

    @app.get("/health")
    async def health(request: Request) -> Any:
        """Each part (database, backbone connection, backbone authentication) healthy or
        not; 503 when one is not."""
        checker = getattr(request.app.state, "health", None)
        if checker is None:
            return {"isHealthy": True}
        report = await checker.report()
        return JSONResponse(report, status_code=200 if report["isHealthy"] else 503)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/Monitoring/Version")
    async def version() -> Any:
        return {"version": VERSION}

    app.include_router(router)
    return app
