"""A small async client of the backbone's identity API: what a connector does to exist.

It holds the identity's Ed25519 key, signs challenges the way the Enmeshed runtime does
(the challenge JSON text, as received) and turns device credentials into bearer tokens.
Used by the connector, the tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from nacl.signing import SigningKey

from schemas import byte_fields
from schemas.signatures import serialize_public_key, serialize_signature


class BackboneError(Exception):
    """A 4xx/5xx answer; `code` is the backbone's machine-readable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Device:
    id: str
    username: str
    password: str


@dataclass(frozen=True)
class Identity:
    address: str
    signing_key: SigningKey
    device: Device


@dataclass(frozen=True)
class LoggedIn:
    """A new identity and a bearer token of its first device: where a test or a benchmark
    that talks to the API directly starts."""

    identity: Identity
    token: str

    @property
    def address(self) -> str:
        return self.identity.address

    @property
    def headers(self) -> dict[str, str]:
        return _auth(self.token)


def _result(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            err = response.json()["error"]
            code, message = err["code"], err["message"]
        except (ValueError, KeyError, TypeError):
            code, message = str(response.status_code), response.text[:200]
        raise BackboneError(response.status_code, code, message)
    if response.status_code == 204:
        return None
    body = response.json()
    return body.get("result", body)


class BackboneClient:
    def __init__(self, http: httpx.AsyncClient, client_id: str, client_secret: str) -> None:
        self.http = http
        self.client_id = client_id
        self.client_secret = client_secret

    async def challenge(self, token: str | None = None) -> str:
        """A fresh challenge as the JSON text that gets signed."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return _challenge_text(await self.http.post("/api/v2/Challenges", headers=headers))

    async def signed_challenge(self, key: SigningKey, token: str | None = None) -> dict[str, str]:
        text = await self.challenge(token)
        signature = key.sign(text.encode()).signature
        return {"challenge": text, "signature": serialize_signature(signature)}

    async def create_identity(self, password: str, key: SigningKey | None = None) -> Identity:
        key = key or SigningKey.generate()
        return await self.create_identity_signed(password, key, await self.signed_challenge(key))

    async def create_identity_signed(
        self, password: str, key: SigningKey, signed_challenge: dict[str, str]
    ) -> Identity:
        body = {
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "identityPublicKey": serialize_public_key(bytes(key.verify_key)),
            "identityVersion": 1,
            "devicePassword": password,
            "signedChallenge": signed_challenge,
        }
        created = _result(await self.http.post("/api/v2/Identities", json=body))
        device = Device(created["device"]["id"], created["device"]["username"], password)
        return Identity(created["address"], key, device)

    async def create_identity_and_log_in(self, password: str) -> LoggedIn:
        identity = await self.create_identity(password)
        return LoggedIn(identity, await self.token(identity.device.username, password))

    async def token(self, username: str, password: str) -> str:
        token, _ = await self.token_with_lifetime(username, password)
        return token

    async def token_with_lifetime(self, username: str, password: str) -> tuple[str, float]:
        """A bearer token and its lifetime in seconds."""
        form = {
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        answer = await self.http.post("/connect/token", data=form)
        if answer.status_code >= 400:
            _raise_oauth(answer)
        body = answer.json()
        return str(body["access_token"]), float(body.get("expires_in", 300))

    async def add_device(self, identity: Identity, token: str, password: str) -> Device:
        body = {
            "devicePassword": password,
            "signedChallenge": await self.signed_challenge(identity.signing_key, token),
        }
        answer = await self.http.post("/api/v2/Devices", json=body, headers=_auth(token))
        created = _result(answer)
        return Device(created["id"], created["username"], password)

    async def devices(self, token: str) -> list[dict[str, Any]]:
        answer = await self.http.get("/api/v2/Devices", headers=_auth(token))
        devices: list[dict[str, Any]] = _result(answer)
        return devices

    async def delete_device(self, token: str, device_id: str) -> None:
        _result(await self.http.delete(f"/api/v2/Devices/{device_id}", headers=_auth(token)))

    async def me(self, token: str) -> dict[str, Any]:
        me: dict[str, Any] = _result(
            await self.http.get("/api/v2/Identities/Self", headers=_auth(token))
        )
        return me


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _challenge_text(response: httpx.Response) -> str:
    dto = _result(response)
    # What the runtime signs: the challenge without nulls, compact, "type" last.
    obj = {k: v for k, v in dto.items() if v is not None}
    obj["type"] = "Identity" if dto.get("createdBy") is None else "Device"
    return json.dumps(obj, separators=(",", ":"))


def _raise_oauth(answer: httpx.Response) -> None:
    # The token endpoint answers errors in OAuth's shape: {"error", "error_description"}.
    try:
        body = answer.json()
        code, message = str(body["error"]), str(body.get("error_description", ""))
    except (ValueError, KeyError, TypeError):
        code, message = str(answer.status_code), answer.text[:200]
    raise BackboneError(answer.status_code, code, message)


def _retry_after(answer: httpx.Response, backoff: float) -> float:
    try:
        asked = float(answer.headers.get("Retry-After", "0"))
    except ValueError:
        asked = 0.0
    return min(max(asked, backoff), DeviceSession.MAX_RETRY_S)


def _b64(data: bytes) -> str:
    return byte_fields.encode(data)


class DeviceSession:
    """One device of an identity, logged in: a bearer token fetched on demand and renewed
    before it expires, and the calls a Connector makes with it. Content goes in and comes
    out as bytes; encrypting it is the caller's job (the backbone only sees ciphertext)."""

    RENEW_BEFORE_S = 60.0
    # A store's restart takes the backbone away for tens of seconds: about a minute of
    # retries in all, each after the backbone's Retry-After (or the backoff, if longer).
    RETRIES = 8
    FIRST_RETRY_S = 0.5
    MAX_RETRY_S = 10.0

    def __init__(self, client: BackboneClient, username: str, password: str) -> None:
        self.client = client
        self.http = client.http
        self._username = username
        self._password = password
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"DeviceSession(username={self._username!r}, <password and token redacted>)"

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() > self._expires_at - self.RENEW_BEFORE_S:
                self._token, lifetime = await self.client.token_with_lifetime(
                    self._username, self._password
                )
                self._expires_at = time.monotonic() + lifetime
            return self._token

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call, repeated while the backbone answers 503 or the connection fails (up to
        RETRIES times). A write carries one Idempotency-Key through all its attempts, so a
        repeat is answered with the first attempt's outcome instead of writing twice."""
        key = {"Idempotency-Key": str(uuid.uuid4())} if method in ("POST", "PUT") else {}
        attempt, backoff = 0, self.FIRST_RETRY_S
        while True:
            try:
                answer = await self._attempt(method, path, key, **kwargs)
            except httpx.TransportError:
                if attempt >= self.RETRIES:
                    raise
                wait = backoff
            else:
                if answer.status_code != 503 or attempt >= self.RETRIES:
                    return _result(answer)
                wait = _retry_after(answer, backoff)
            attempt += 1
            await asyncio.sleep(wait)
            backoff = min(backoff * 2, self.MAX_RETRY_S)

    async def _attempt(
        self, method: str, path: str, key: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self.token()}", **key}
        answer = await self.http.request(method, path, headers=headers, **kwargs)
        if answer.status_code == 401:  # revoked or expired early: one fresh login, then give up
            self._token = None
            headers = {"Authorization": f"Bearer {await self.token()}", **key}
            answer = await self.http.request(method, path, headers=headers, **kwargs)
        return answer

    async def create_template(
        self, content: bytes, expires_at: datetime | None = None, max_allocations: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"content": _b64(content)}
        if expires_at is not None:
            body["expiresAt"] = expires_at.isoformat()
        if max_allocations is not None:
            body["maxNumberOfAllocations"] = max_allocations
        created: dict[str, Any] = await self._call(
            "POST", "/api/v2/RelationshipTemplates", json=body
        )
        return created

    async def template(self, template_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "GET", f"/api/v2/RelationshipTemplates/{template_id}"
        )
        return found

    async def create_token(self, content: bytes, expires_at: datetime) -> dict[str, Any]:
        body = {"content": _b64(content), "expiresAt": expires_at.isoformat()}
        created: dict[str, Any] = await self._call("POST", "/api/v2/Tokens", json=body)
        return created

    async def token_content(self, token_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/api/v2/Tokens/{token_id}")
        return found

    async def request_relationship(self, template_id: str, content: bytes) -> dict[str, Any]:
        body = {"relationshipTemplateId": template_id, "creationContent": _b64(content)}
        created: dict[str, Any] = await self._call("POST", "/api/v2/Relationships", json=body)
        return created

    async def relationship(self, relationship_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/api/v2/Relationships/{relationship_id}")
        return found

    async def relationship_step(
        self, relationship_id: str, step: str, response_content: bytes | None = None
    ) -> dict[str, Any]:
        """`step`: Accept, Reject, Revoke, Terminate, … (the backbone checks it is allowed)."""
        body = {"creationResponseContent": _b64(response_content)} if response_content else {}
        changed: dict[str, Any] = await self._call(
            "PUT", f"/api/v2/Relationships/{relationship_id}/{step}", json=body
        )
        return changed

    async def send_message(
        self, body: bytes, wrapped_keys: dict[str, bytes], attachments: list[str] | None = None
    ) -> dict[str, Any]:
        recipients = [{"address": a, "encryptedKey": _b64(k)} for a, k in wrapped_keys.items()]
        message = {"recipients": recipients, "body": _b64(body), "attachments": attachments or []}
        sent: dict[str, Any] = await self._call("POST", "/api/v2/Messages", json=message)
        return sent

    async def upload_file(
        self, ciphertext: bytes, cipher_hash: bytes, expires_at: datetime, properties: bytes
    ) -> dict[str, Any]:
        form = {
            "cipherHash": _b64(cipher_hash),
            "expiresAt": expires_at.isoformat(),
            "encryptedProperties": _b64(properties),
        }
        files = {"content": ("content", ciphertext, "application/octet-stream")}
        created: dict[str, Any] = await self._call("POST", "/api/v2/Files", data=form, files=files)
        return created

    async def file_metadata(self, file_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/api/v2/Files/{file_id}/metadata")
        return found

    async def file_content(self, file_id: str) -> bytes:
        headers = {"Authorization": f"Bearer {await self.token()}"}
        answer = await self.http.get(f"/api/v2/Files/{file_id}/Content", headers=headers)
        if answer.status_code >= 400:
            _result(answer)  # raises with the backbone's code
        return answer.content

    async def message(self, message_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/api/v2/Messages/{message_id}")
        return found
