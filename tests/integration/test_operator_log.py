"""The operator's tools on a running backbone: `backbone events` shows an identity's and a
message's history with the metadata the backbone may open and never end-to-end content,
and the auditor covers the real log so that `backbone audit verify` holds without any data
key (a shredded key changes nothing for the audit)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api_client import b64, new_party, relate
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

BODY = b"end-to-end ciphertext the backbone must never print"
WRAPPED = b"a wrapped content key, also never printed"
AUDIT_SEED = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(scope="module")
def audit_env(stack: Stack, cassandra_session: Any) -> Iterator[dict[str, str]]:
    yield {**stack.env, "BACKBONE_AUDIT_SEED": AUDIT_SEED, "BACKBONE_AUDIT_INTERVAL": "1"}
    keyspace = f"{stack.cluster.keyspace}_audit"
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)


async def _backbone(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "backbone.cli", *argv]
    return await asyncio.to_thread(
        subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
async def exchange(stack: Stack) -> AsyncIterator[dict[str, str]]:
    """Two identities with a relationship, and a message from one to the other."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        sender, recipient = await new_party(http), await new_party(http)
        rid = await relate(http, recipient, sender)
        message = {
            "recipients": [{"address": recipient.address, "encryptedKey": b64(WRAPPED)}],
            "body": b64(BODY),
        }
        sent = await http.post("/api/v1/Messages", json=message, headers=sender.headers)
        assert sent.status_code == 201, sent.text
        mid = sent.json()["result"]["id"]
        for _ in range(100):  # until the recipient's mailbox entry is on the log
            page = await http.get("/api/v1/Mailbox?since=0", headers=recipient.headers)
            if any(e["type"] == "MessageReceived" for e in page.json()["result"]):
                break
            await asyncio.sleep(0.2)
        yield {
            "sender": sender.address,
            "recipient": recipient.address,
            "message": mid,
            "relationship": rid,
        }


def _never_shows_content(text: str) -> None:
    for secret in (BODY, WRAPPED):
        assert secret.decode() not in text
        assert base64.b64encode(secret).decode() not in text
        assert base64.urlsafe_b64encode(secret).decode().rstrip("=") not in text
    assert "$argon2" not in text and "password_hash" not in text.replace('"password_hash"', "")


async def test_events_shows_an_identitys_history_without_content(
    stack: Stack, exchange: dict[str, str]
) -> None:
    done = await _backbone(stack.env, "events", "--identity", exchange["sender"], "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    types = [r["type"] for r in records]
    assert "IdentityCreated" in types and "MessageSent" in types, types
    sent = next(r for r in records if r["type"] == "MessageSent")
    assert sent["actor"] == exchange["sender"]
    assert sent["fields"]["message_id"] == exchange["message"]
    assert sent["fields"]["recipients"] == [exchange["recipient"]]
    assert sent["withheld_bytes"]["body"] == len(BODY)
    assert sent["withheld_bytes"]["recipients[].encrypted_key"] == len(WRAPPED)
    assert sent["record_bytes"] > sent["sealed_body_bytes"] > len(BODY)
    assert types.index("IdentityCreated") < types.index("MessageSent")  # in time order
    _never_shows_content(done.stdout)

    # What happened *to* the recipient: its mailbox entries, with the ids they point to.
    mailbox = await _backbone(
        stack.env,
        "events",
        "--identity",
        exchange["recipient"],
        "--topic",
        "mailbox",
        "--type",
        "MailboxEntry",
    )
    assert mailbox.returncode == 0, mailbox.stderr
    assert exchange["message"] in mailbox.stdout and "MailboxEntry" in mailbox.stdout
    assert "withheld: payload_json" in mailbox.stdout
    _never_shows_content(mailbox.stdout)

    # One aggregate's history, and a time window that excludes everything.
    one = await _backbone(
        stack.env,
        "events",
        "--aggregate",
        f"message:{exchange['message']}",
        "--topic",
        "events",
        "--json",
    )
    kinds = [json.loads(line)["type"] for line in one.stdout.splitlines()]
    assert "MessageSent" in kinds and "IdentityCreated" not in kinds, kinds
    none = await _backbone(
        stack.env,
        "events",
        "--identity",
        exchange["sender"],
        "--until",
        "2000-01-01T00:00:00Z",
        "--json",
    )
    assert none.stdout == ""
    envelope_only = await _backbone(
        stack.env, "events", "--identity", exchange["sender"], "--no-open", "--json"
    )
    first = json.loads(envelope_only.stdout.splitlines()[0])
    assert "fields" not in first and first["data_key_id"].startswith("dk-")


async def test_the_auditor_covers_the_real_log_and_verify_needs_no_data_key(
    audit_env: dict[str, str], exchange: dict[str, str]
) -> None:
    once = await _backbone(audit_env, "auditor", "--once")
    assert once.returncode == 0, once.stderr
    verified = await _backbone(audit_env, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    reports = json.loads(verified.stdout)
    assert sum(r["signed_size"] for r in reports) > 0
    assert not any(r["tampered"] for r in reports)
    # A master key that opens nothing (as if every data key were shredded): the audit
    # covers ciphertext and holds all the same.
    blind = {**audit_env, "BACKBONE_MASTER_KEY": base64.b64encode(bytes(32)).decode()}
    again = await _backbone(blind, "audit", "verify", "--topic", "events")
    assert again.returncode == 0, again.stdout
    assert "0 tampered" in again.stdout
