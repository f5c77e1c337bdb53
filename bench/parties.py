"""Identities for the end-to-end runs, made through the real API as an app would.

A *group* is one sender with `recipients` peers, each with an active relationship to the
sender (template by the recipient, request by the sender, accept by the recipient), so a
message from the sender to any or all of its peers is allowed. Several groups spread the
load over partitions: every aggregate key (message, identity, pair) hashes to its own.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

import httpx

from bench.progress import Progress
from connector.backbone_client import BackboneClient

# Bearer tokens live 15 minutes (BACKBONE_TOKEN_TTL); a full run takes longer, so tokens are
# renewed between phases once they are older than this.
TOKEN_RENEW_AFTER_S = 600.0


@dataclass
class Party:
    """A logged-in identity with one device, bound to one API process (`api`)."""

    address: str
    username: str
    password: str
    api: int
    headers: dict[str, str] = field(default_factory=dict)
    logged_in_at: float = 0.0
    last_index: int = 0  # the last mailbox index this benchmark has seen for it

    def __repr__(self) -> str:
        return f"Party({self.address!r}, api={self.api})"


@dataclass
class Group:
    sender: Party
    recipients: list[Party]


class Clients:
    """One httpx client and `BackboneClient` per API process; load is spread over them."""

    def __init__(self, urls: list[str], client_id: str, secret: str) -> None:
        # No connection cap: the closed-loop senders and the open streams would otherwise
        # queue inside httpx and the benchmark would measure its own pool.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
        timeout = httpx.Timeout(60.0, connect=10.0)
        self.urls = urls
        self.http = [httpx.AsyncClient(base_url=u, timeout=timeout, limits=limits) for u in urls]
        self.backbone = [BackboneClient(h, client_id, secret) for h in self.http]

    def of(self, party: Party) -> httpx.AsyncClient:
        return self.http[party.api % len(self.http)]

    async def aclose(self) -> None:
        await asyncio.gather(*(h.aclose() for h in self.http))


async def login(clients: Clients, party: Party) -> None:
    token = await clients.backbone[party.api % len(clients.http)].token(
        party.username, party.password
    )
    party.headers = {"Authorization": f"Bearer {token}"}
    party.logged_in_at = time.monotonic()


async def new_party(clients: Clients, api: int) -> Party:
    password = secrets.token_urlsafe(18)
    new = await clients.backbone[api % len(clients.http)].create_identity_and_log_in(password)
    device = new.identity.device
    return Party(new.address, device.username, password, api, new.headers, time.monotonic())


async def relate(clients: Clients, sender: Party, recipient: Party) -> None:
    """An active relationship between the two, the sender being the requester."""
    template = await clients.of(recipient).post(
        "/api/v2/RelationshipTemplates", json={"content": "eA=="}, headers=recipient.headers
    )
    template.raise_for_status()
    body = {"relationshipTemplateId": template.json()["result"]["id"], "creationContent": "eA=="}
    request = await clients.of(sender).post(
        "/api/v2/Relationships", json=body, headers=sender.headers
    )
    request.raise_for_status()
    rid = request.json()["result"]["id"]
    accept = await clients.of(recipient).put(
        f"/api/v2/Relationships/{rid}/Accept", json={}, headers=recipient.headers
    )
    accept.raise_for_status()


async def mailbox_head(clients: Clients, party: Party) -> int:
    """The party's last mailbox index now (pages through what is there)."""
    since = party.last_index
    while True:
        page = await get(
            clients.of(party), f"/api/v2/Mailbox?since={since}&limit=1000", party.headers
        )
        page.raise_for_status()
        last = int(page.json()["last"])
        if last == since:
            return since
        since = last


async def make_groups(clients: Clients, groups: int, recipients: int) -> list[Group]:
    """`groups` senders with `recipients` related peers each; parties are spread round
    robin over the API processes. Setup is not timed."""
    slots = asyncio.Semaphore(8)  # the API is not what is measured here; do not flood it
    total = groups * (1 + recipients) + groups * recipients

    with Progress("setup: identities and relationships", total, "step") as bar:

        async def one_party(i: int) -> Party:
            async with slots:
                party = await new_party(clients, i)
                bar.update()
                return party

        parties = await asyncio.gather(*(one_party(i) for i in range(groups * (1 + recipients))))
        made = [
            Group(
                parties[g * (1 + recipients)],
                list(parties[g * (1 + recipients) + 1 : (g + 1) * (1 + recipients)]),
            )
            for g in range(groups)
        ]

        async def one_relationship(sender: Party, recipient: Party) -> None:
            async with slots:
                await relate(clients, sender, recipient)
                bar.update()

        await asyncio.gather(*(one_relationship(g.sender, r) for g in made for r in g.recipients))

    # Let the relationship entries be sequenced, then start every stream after them.
    await asyncio.sleep(1.0)
    for party in parties:
        party.last_index = await mailbox_head(clients, party)
    return made


async def renew_logins(clients: Clients, parties: list[Party]) -> None:
    """Fresh tokens for parties whose token is getting old (between phases only)."""
    stale = [p for p in parties if time.monotonic() - p.logged_in_at > TOKEN_RENEW_AFTER_S]
    slots = asyncio.Semaphore(8)

    async def one(party: Party) -> None:
        async with slots:
            await login(clients, party)

    await asyncio.gather(*(one(p) for p in stale))


def all_parties(groups: list[Group]) -> list[Party]:
    return [p for g in groups for p in (g.sender, *g.recipients)]


async def get(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    """A GET that is retried once when a pooled keep-alive connection turns out to have
    been closed by the server just as it was reused (uvicorn closes idle ones after 5 s):
    that is the client's race, not an answer of the backbone."""
    try:
        return await http.get(url, headers=headers)
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        return await http.get(url, headers=headers)
