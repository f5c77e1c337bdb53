"""What the integration tests that call the backbone's API directly share: an identity created
and logged in (`new_party`, with more devices if asked), two in an active relationship
(`relate`), a message sent (`send`), an error's code."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx

from connector.backbone_client import BackboneClient
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET

PASSWORD = "a long enough password"


@dataclass
class Party:
    address: str
    headers: dict[str, str]  # the first device's bearer token
    usernames: list[str] = field(default_factory=list)  # of every device, the first first


async def new_party(http: httpx.AsyncClient, devices: int = 1) -> Party:
    """A new identity with `devices` devices (all with PASSWORD), logged in on the first."""
    client = BackboneClient(http, CLIENT_ID, CLIENT_SECRET)
    logged_in = await client.create_identity_and_log_in(PASSWORD)
    usernames = [logged_in.identity.device.username]
    for _ in range(devices - 1):
        device = await client.add_device(logged_in.identity, logged_in.token, PASSWORD)
        usernames.append(device.username)
    return Party(logged_in.address, logged_in.headers, usernames)


async def request_relationship(http: httpx.AsyncClient, owner: Party, peer: Party) -> str:
    """A pending relationship (its id): a template by `owner`, requested by `peer`."""
    template = await http.post(
        "/api/v1/RelationshipTemplates", json={"content": "eA=="}, headers=owner.headers
    )
    body = {"relationshipTemplateId": template.json()["result"]["id"], "creationContent": "eA=="}
    rel = await http.post("/api/v1/Relationships", json=body, headers=peer.headers)
    assert rel.status_code in (200, 201), rel.text
    rid: str = rel.json()["result"]["id"]
    return rid


async def relate(http: httpx.AsyncClient, owner: Party, peer: Party) -> str:
    """An active relationship (its id): a template by `owner`, requested by `peer`, accepted."""
    rid = await request_relationship(http, owner, peer)
    accepted = await http.put(f"/api/v1/Relationships/{rid}/Accept", headers=owner.headers)
    assert accepted.status_code == 200, accepted.text
    return rid


async def send(http: httpx.AsyncClient, sender: Party, recipients: list[Party], text: bytes) -> str:
    """A message from `sender` to `recipients` (its id), answered 201."""
    body = {
        "recipients": [{"address": r.address, "encryptedKey": "a2V5"} for r in recipients],
        "body": b64(text),
    }
    sent = await http.post("/api/v1/Messages", json=body, headers=sender.headers)
    assert sent.status_code == 201, sent.text
    return str(sent.json()["result"]["id"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def code_of(answer: httpx.Response) -> tuple[int, str]:
    """The status and the machine-readable code of an error answer."""
    return answer.status_code, answer.json()["error"]["code"]
