"""The OpenAPI document describes what the API really sends (issue 19): one walk through every
operation of a version on the real stack, each answer checked against its route's documented
model (the same pydantic models the document is made of, strict, no unnamed fields) and its
status against the statuses the document lists for the operation.

The fuzz run (`make fuzz`) checks the document against generated requests, most of which the
API refuses (signatures, relationships, state); this walk gets the successes it rarely
reaches: a relationship through its steps, a message with an attachment, a sync run, the
datawallet, in both wire formats (v1 standard base64, v2 base64url).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.routing import compile_path

from api.app import create_app
from api.openapi import flat_routes
from connector.backbone_client import BackboneClient
from tests.integration.api_client import PASSWORD
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack

pytestmark = pytest.mark.integration

# Never ends by design: a walk cannot wait for its answer's end.
NOT_WALKED = {("GET", "/sse")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Strict):
    id: str
    code: str
    message: str
    docs: str
    time: str
    writeOutcome: Literal["notApplied", "unknown"] | None = None


class ErrorBody(_Strict):
    error: ErrorDetail


class OAuthErrorBody(_Strict):
    error: str
    error_description: str


class Contract:
    """Checks every answer of an httpx client against the app's routes and document."""

    def __init__(self) -> None:
        app = create_app()
        self.spec = app.openapi()
        self.routes = [r for r in flat_routes(app) if r.include_in_schema]
        self.seen: set[tuple[str, str]] = set()
        self.problems: list[str] = []

    def _route(self, method: str, path: str) -> Any:
        candidates = [r for r in self.routes if method in (r.methods or ())]
        exact = [r for r in candidates if r.path_format == path]
        return next(
            iter(exact or [r for r in candidates if compile_path(r.path_format)[0].match(path)]),
            None,
        )

    async def check(self, answer: httpx.Response) -> None:
        await answer.aread()
        method, path = answer.request.method, answer.request.url.path
        route = self._route(method, path)
        where = f"{method} {path} -> {answer.status_code}"
        if route is None:
            self.problems.append(f"{where}: no documented operation")
            return
        self.seen.add((method, route.path_format))
        op = self.spec["paths"][route.path_format][method.lower()]
        status = str(answer.status_code)
        if status not in op["responses"]:
            self.problems.append(f"{where}: status not in the document {sorted(op['responses'])}")
            return
        documented = op["responses"][status].get("content", {})
        media = answer.headers.get("content-type", "").split(";")[0]
        if not documented:
            if answer.content:
                self.problems.append(f"{where}: a body where the document has none")
            return
        if media not in documented:
            self.problems.append(f"{where}: {media} is not one of {sorted(documented)}")
            return
        if media != "application/json":
            return  # bytes, text: their schema is "a string"
        try:
            self._model(route, answer.status_code, path).validate_json(answer.content, strict=True)
        except ValidationError as exc:
            self.problems.append(f"{where}: {exc}\n{answer.text[:500]}")

    @staticmethod
    def _model(route: Any, status: int, path: str) -> TypeAdapter[Any]:
        if status >= 400:
            return TypeAdapter(
                OAuthErrorBody | ErrorBody if path == "/connect/token" else ErrorBody
            )
        own = route.responses.get(status, {}).get("model")
        return TypeAdapter(own if own is not None else route.response_model)

    def not_walked(self, version: str) -> set[tuple[str, str]]:
        prefix = f"/api/{version}"
        every = {
            (method.upper(), path)
            for path, item in self.spec["paths"].items()
            for method in item
            if path.startswith(prefix)
        }
        left_out = {(method, prefix + path) for method, path in NOT_WALKED}
        return every - left_out - self.seen


@pytest.fixture
async def walk(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, Contract]]:
    contract = Contract()
    hooks = {"response": [contract.check]}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, event_hooks=hooks) as http:
        yield http, contract


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _later(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, (answer.request.url, answer.text)
    return answer.json()["result"] if answer.content else None


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_every_answer_matches_the_document(
    walk: tuple[httpx.AsyncClient, Contract], version: str
) -> None:
    http, contract = walk
    api = f"/api/{version}"

    async def in_this_version(request: httpx.Request) -> None:
        # The Connector's client speaks v2: its calls (identities, devices) go to `version`.
        if request.url.path.startswith("/api/v2/"):
            request.url = request.url.copy_with(path=api + request.url.path[len("/api/v2") :])

    http.event_hooks = {**http.event_hooks, "request": [in_this_version]}
    client = BackboneClient(http, CLIENT_ID, CLIENT_SECRET)
    owner, peer, third = [await client.create_identity_and_log_in(PASSWORD) for _ in range(3)]
    a, b, c = owner.headers, peer.headers, third.headers

    # Operations, version, catalogue, identity and devices.
    for unversioned in ("/health", "/ready", "/metrics"):
        await http.get(unversioned)
    await http.get(f"{api}/Version")
    await http.get(f"{api}/Announcements", headers=a)
    tags = await http.get(f"{api}/Tags")
    await http.get(f"{api}/Tags", headers={"If-None-Match": tags.headers["ETag"]})
    await http.post(f"{api}/Challenges")
    await http.post(f"{api}/Challenges", headers=a)
    await http.get(f"{api}/Identities/Self", headers=a)
    await http.get(f"{api}/Identities/IsDeleted", params={"username": "nobody"})
    second = await client.add_device(owner.identity, owner.token, "another device password")
    _ok(await http.get(f"{api}/Devices", headers=a))
    await http.get(f"{api}/Devices/Self", headers=a)
    _ok(await http.delete(f"{api}/Devices/{second.id}", headers=a), 204)
    change = {"oldPassword": PASSWORD, "newPassword": "a new long enough password"}
    _ok(await http.put(f"{api}/Devices/Self/Password", json=change, headers=c), 204)

    # Tokens and templates.
    token = _ok(
        await http.post(
            f"{api}/Tokens", json={"content": _b64(b"t"), "expiresAt": _later()}, headers=a
        ),
        201,
    )
    await http.get(f"{api}/Tokens/{token['id']}")
    await http.get(f"{api}/Tokens", headers=a)
    _ok(await http.delete(f"{api}/Tokens/{token['id']}", headers=a), 204)
    template = {"content": _b64(b"template"), "expiresAt": _later()}
    template_id = _ok(
        await http.post(f"{api}/RelationshipTemplates", json=template, headers=a), 201
    )["id"]
    await http.get(f"{api}/RelationshipTemplates/{template_id}", headers=b)
    await http.get(f"{api}/RelationshipTemplates", headers=a)

    # A relationship through its steps, and two requests refused and revoked.
    rels = f"{api}/Relationships"
    request = {"relationshipTemplateId": template_id, "creationContent": _b64(b"hello")}
    rid = _ok(await http.post(rels, json=request, headers=b), 201)["id"]
    await http.get(f"{rels}/{rid}", headers=b)
    await http.get(rels, headers=a)
    await http.get(f"{rels}/CanCreate", params={"peer": owner.address}, headers=b)
    accept = {"creationResponseContent": _b64(b"welcome")}
    _ok(await http.put(f"{rels}/{rid}/Accept", json=accept, headers=a))
    for step, who in (
        ("Terminate", a),
        ("Reactivate", a),
        ("Reactivate/Revoke", a),
        ("Reactivate", a),
        ("Reactivate/Reject", b),
        ("Reactivate", b),
        ("Reactivate/Accept", a),
    ):
        _ok(await http.put(f"{rels}/{rid}/{step}", headers=who))
    for step, who in (("Reject", a), ("Revoke", c)):
        other = _ok(await http.post(rels, json=request, headers=c), 201)["id"]
        _ok(await http.put(f"{rels}/{other}/{step}", headers=who))

    # A file, and a message that carries it.
    data = b"ciphertext of a file"
    form = {"cipherHash": _b64(hashlib.sha256(data).digest()), "expiresAt": _later()}
    files = {"content": ("blob", data, "application/octet-stream")}
    uploaded = _ok(await http.post(f"{api}/Files", data=form, files=files, headers=a), 201)
    fid = uploaded["id"]
    await http.get(f"{api}/Files/{fid}/metadata", headers=b)
    await http.get(f"{api}/Files/{fid}", headers=b)
    await http.get(f"{api}/Files/{fid}/Content", headers=b)
    proof = {"ownershipToken": uploaded["ownershipToken"]}
    await http.post(f"{api}/Files/{fid}/ValidateOwnershipToken", json=proof, headers=a)
    message = {
        "recipients": [{"address": peer.address, "encryptedKey": _b64(b"key")}],
        "body": _b64(b"body"),
        "attachments": [{"id": fid}],
    }
    mid = _ok(await http.post(f"{api}/Messages", json=message, headers=a), 201)["id"]
    await http.get(f"{api}/Messages/{mid}", headers=b)
    await http.get(f"{api}/Messages", headers=a)

    # The mailbox, and the sync over it.
    page = await http.get(f"{api}/Mailbox", headers=b)
    await http.get(f"{api}/Mailbox/Cursor", headers=b)
    await http.put(f"{api}/Mailbox/Cursor", json={"index": page.json()["last"]}, headers=b)
    run = _ok(await http.post(f"{api}/SyncRuns", headers=b), 201)["syncRun"]
    await http.get(f"{api}/SyncRuns/{run['id']}", headers=b)
    events = _ok(await http.get(f"{api}/SyncRuns/{run['id']}/ExternalEvents", headers=b))
    assert events, "the peer's mailbox has relationship and message events"
    modification = {
        "objectIdentifier": "OBJ1",
        "collection": "Attributes",
        "type": "Create",
        "encryptedPayload": _b64(b"payload"),
    }
    finalize = {
        "externalEventResults": [{"externalEventId": e["id"]} for e in events],
        "datawalletModifications": [modification],
    }
    _ok(
        await http.put(
            f"{api}/SyncRuns/{run['id']}/FinalizeExternalEventSync", json=finalize, headers=b
        )
    )
    await http.post(f"{api}/SyncRuns", headers=b)  # 200 when nothing came meanwhile
    await http.get(f"{api}/Datawallet", headers=b)
    _ok(
        await http.post(
            f"{api}/Datawallet/Modifications", json={"modifications": [modification]}, headers=b
        ),
        201,
    )
    supports = {**b, "x-supported-datawallet-version": "1"}
    upgrade = {"type": "DatawalletVersionUpgrade"}
    run = _ok(await http.post(f"{api}/SyncRuns", json=upgrade, headers=supports), 201)["syncRun"]
    _ok(
        await http.put(
            f"{api}/SyncRuns/{run['id']}/FinalizeDatawalletVersionUpgrade",
            json={"newDatawalletVersion": 1},
            headers=supports,
        )
    )
    assert len(_ok(await http.get(f"{api}/Datawallet/Modifications", headers=supports))) == 2

    # The relationship's end; an identity's deletion, cancelled at once; a template deleted.
    for step in ("Terminate", "Decompose"):
        _ok(await http.put(f"{rels}/{rid}/{step}", headers=a))
    deletions = f"{api}/Identities/Self/DeletionProcesses"
    process = _ok(await http.post(deletions, headers=c), 201)
    await http.get(deletions, headers=c)
    await http.get(f"{deletions}/{process['id']}", headers=c)
    _ok(await http.put(f"{deletions}/{process['id']}/Cancel", headers=c))
    _ok(await http.delete(f"{api}/RelationshipTemplates/{template_id}", headers=a), 204)

    # Refusals, in the error shape the document gives them.
    await http.get(f"{api}/Tokens/TOK00000000000000000")
    await http.get(f"{api}/Devices")
    await http.post(f"{api}/Messages", json={**message, "body": "not base64!"}, headers=a)
    login = {
        "grant_type": "password",
        "username": "x",
        "password": "y",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    await http.post("/connect/token", data=login)

    assert not contract.problems, "\n".join(contract.problems)
    assert not contract.not_walked(version), sorted(contract.not_walked(version))
