"""A small async client of the backbone's identity API: what a connector does to exist.

It holds the identity's Ed25519 key, signs challenges the way the Enmeshed runtime does
(the challenge JSON text, as received) and turns device credentials into bearer tokens.
Used by the connector, the tests and the benchmarks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from nacl.signing import SigningKey

from backbone.security.signatures import serialize_public_key, serialize_signature


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
        return _challenge_text(await self.http.post("/api/v1/Challenges", headers=headers))

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
        created = _result(await self.http.post("/api/v1/Identities", json=body))
        device = Device(created["device"]["id"], created["device"]["username"], password)
        return Identity(created["address"], key, device)

    async def token(self, username: str, password: str) -> str:
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
        token: str = answer.json()["access_token"]
        return token

    async def add_device(self, identity: Identity, token: str, password: str) -> Device:
        body = {
            "devicePassword": password,
            "signedChallenge": await self.signed_challenge(identity.signing_key, token),
        }
        answer = await self.http.post("/api/v1/Devices", json=body, headers=_auth(token))
        created = _result(answer)
        return Device(created["id"], created["username"], password)

    async def devices(self, token: str) -> list[dict[str, Any]]:
        answer = await self.http.get("/api/v1/Devices", headers=_auth(token))
        devices: list[dict[str, Any]] = _result(answer)
        return devices

    async def delete_device(self, token: str, device_id: str) -> None:
        _result(await self.http.delete(f"/api/v1/Devices/{device_id}", headers=_auth(token)))

    async def me(self, token: str) -> dict[str, Any]:
        me: dict[str, Any] = _result(
            await self.http.get("/api/v1/Identities/Self", headers=_auth(token))
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
