"""Identity deletion with crypto-shredding (issue 22) on real Kafka and Cassandra.

One identity X with two devices, relationships with A and B, tokens, a file, a sync run,
a datawallet modification, messages sent and received:

- starts a deletion (the grace period's limits refused with their code), logs in during
  the grace period, and cancels; A sees PeerToBeDeleted then PeerDeletionCancelled in its
  Enmeshed sync and the pending deletion in the relationship (`peerDeletionInfo`), X its
  own status in `Identities/Self`;
- starts again with a grace period of seconds (a "day" is 3 s here); the worker that runs
  the final step is SIGKILLed half-way and a second worker finishes it;
- afterwards: its logins fail and `IsDeleted` says so, no row of the whole keyspace names
  its address, key id or usernames, every record sealed with its key fails to open with the
  master key (its changelog entry is a tombstone), a replay into a fresh keyspace has no
  trace of it either, the operator's `backbone deleted` answers, and A and B still read
  what is theirs (the message X sent them, from the anonymous address), also in the
  replayed keyspace.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from backbone.datakeys import unwrap_all, wrapped_data_keys
from backbone.deletion_policy import GRACE_OUT_OF_RANGE, anonymous_address
from backbone.replay.compare import compare
from backbone.security.logcrypto import derive_key
from backbone.settings import BackboneSettings, ClusterSettings
from schemas import codec
from store.cassandra import connect
from store.envelopes import EnvelopeCodec
from store.topics import read_records
from streams.table_codec import SealedJson
from tests.integration.api_client import PASSWORD, Party, new_party, relate
from tests.integration.stack import CLIENT_ID, CLIENT_SECRET, Stack, own_stack

pytestmark = pytest.mark.integration

DAY_S = 3  # a "day" of grace period, in this test


@pytest.fixture(scope="module")
def stack(
    cluster_settings: ClusterSettings,
    kafka_topics: None,
    cassandra_session: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Its own keyspace and topics: the test searches the whole keyspace for the identity."""
    try:
        yield from own_stack(
            cluster_settings,
            cassandra_session,
            tmp_path_factory,
            "deletion",
            BACKBONE_DELETION_DAY_S=str(DAY_S),
            BACKBONE_DELETION_POLL_S="1",
            BACKBONE_DELETION_LEASE_S="4",
            BACKBONE_DELETION_STEP_PAUSE_S="3",
        )
    finally:  # and the keyspace its replay made
        replayed = f"{cluster_settings.keyspace}_deletion_r"
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {replayed}", timeout=60)


@pytest.fixture(scope="module")
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


def _ok(answer: httpx.Response, *status: int) -> Any:
    assert answer.status_code in (status or (200, 201)), answer.text
    return answer.json().get("result") if answer.content else None


async def _send(http: httpx.AsyncClient, sender: Party, to: list[Party], text: bytes) -> str:
    body = {
        "recipients": [{"address": r.address, "encryptedKey": "a2V5"} for r in to],
        "body": base64.b64encode(text).decode(),
    }
    return str(_ok(await http.post("/api/v1/Messages", json=body, headers=sender.headers))["id"])


async def _login(http: httpx.AsyncClient, username: str) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": username,
        "password": PASSWORD,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    return await http.post("/connect/token", data=form)


async def _external_events(http: httpx.AsyncClient, who: Party) -> list[dict[str, Any]]:
    """What the Enmeshed client sees: a sync run's external events (the run is finalized)."""
    started = _ok(await http.post("/api/v2/SyncRuns", headers=who.headers))
    run = started["syncRun"]
    if run is None:
        return []
    events = _ok(
        await http.get(f"/api/v2/SyncRuns/{run['id']}/ExternalEvents", headers=who.headers)
    )
    _ok(
        await http.put(
            f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync",
            json={"externalEventResults": [], "datawalletModifications": []},
            headers=who.headers,
        )
    )
    return list(events)


async def _until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


def _traces(session: Any, keyspace: str, needles: list[str]) -> list[str]:
    """Every row of every table of `keyspace` that contains one of `needles`, as text."""
    listed = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    tables = [r.table_name for r in listed]
    found = []
    for table in tables:
        for row in session.execute(f"SELECT * FROM {keyspace}.{table}", timeout=120):  # noqa: S608
            text = repr(tuple(row))
            found += [f"{table}: {n}" for n in needles if n in text]
    return found


async def _backbone(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "backbone.cli", *argv]
    return await asyncio.to_thread(
        subprocess.run, cmd, env=stack.env, capture_output=True, text=True, timeout=300
    )


async def _peer_deletion(http: httpx.AsyncClient, who: Party, rid: str) -> Any:
    relationship = _ok(await http.get(f"/api/v1/Relationships/{rid}", headers=who.headers))
    return relationship["peerDeletionInfo"]


async def _not(check: Any) -> bool:
    return not await check()


def _log_has(worker: Any, text: bytes) -> bool:
    with worker.log_file.open("rb") as fh:
        fh.seek(worker.log_offset)
        return text in fh.read()


async def test_an_identity_deleted_after_its_grace_period_leaves_no_trace_but_its_peers_data(
    stack: Stack, http: httpx.AsyncClient, cassandra_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, a, b = await new_party(http, devices=2), await new_party(http), await new_party(http)
    rel_a = await relate(http, x, a)  # A answered X's template
    rel_b = await relate(http, b, x)  # X answered B's
    from_x = await _send(http, x, [a, b], b"from X to both")
    to_x = await _send(http, a, [x], b"from A to X")
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    _ok(
        await http.post(
            "/api/v1/Tokens", json={"content": "eA==", "expiresAt": expires}, headers=x.headers
        )
    )
    a_token = _ok(
        await http.post(
            "/api/v1/Tokens",
            json={"content": "eA==", "expiresAt": expires, "forIdentity": x.address},
            headers=a.headers,
        )
    )["id"]
    data = b"file of X" * 100
    form = {
        "cipherHash": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "expiresAt": expires,
    }
    blob = {"content": ("blob", data, "application/octet-stream")}
    _ok(await http.post("/api/v1/Files", headers=x.headers, data=form, files=blob))
    modification = {
        "objectIdentifier": "o1",
        "collection": "c",
        "type": "Create",
        "encryptedPayload": "eA==",
    }
    _ok(
        await http.post(
            "/api/v1/Datawallet/Modifications",
            json={"modifications": [modification]},
            headers=x.headers,
        )
    )
    await _external_events(http, x)  # a sync run of X's
    await _external_events(http, a)  # A is up to date before the deletion starts

    # The grace period's limits, then a process in its grace period, then its cancellation.
    processes = "/api/v2/Identities/Self/DeletionProcesses"
    for days in (0, 91):
        refused = await http.post(
            processes, json={"lengthOfGracePeriodInDays": days}, headers=x.headers
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == GRACE_OUT_OF_RANGE
    first = _ok(
        await http.post(processes, json={"lengthOfGracePeriodInDays": 30}, headers=x.headers), 201
    )
    assert first["status"] == "Active"
    again = await http.post(processes, headers=x.headers)
    assert again.status_code == 400, again.text
    assert _ok(await http.get(processes, headers=x.headers))[0]["id"] == first["id"]
    assert (await http.get(processes, headers=a.headers)).json()["result"] == []  # only its own
    assert (await http.get(f"{processes}/{first['id']}", headers=a.headers)).status_code == 404
    assert (await _login(http, x.usernames[1])).status_code == 200  # logs in during grace
    seen = await _until(lambda: _external_events(http, a), 30, "A's sync to show it")
    assert {"type": "PeerToBeDeleted", "relationshipId": rel_a} in [
        {"type": e["type"], "relationshipId": e["payload"]["relationshipId"]} for e in seen
    ], seen
    # A sees it in the relationship too (upstream's peerDeletionInfo); X sees its own status.
    pending = {"deletionStatus": "ToBeDeleted", "deletionDate": first["gracePeriodEndsAt"]}
    assert await _peer_deletion(http, a, rel_a) == pending
    assert await _peer_deletion(http, x, rel_a) is None  # its own deletion is no peer's
    me = _ok(await http.get("/api/v1/Identities/Self", headers=x.headers))
    assert (me["status"], me["deletionGracePeriodEndsAt"]) == (
        "ToBeDeleted",
        first["gracePeriodEndsAt"],
    )
    cancelled = _ok(await http.put(f"{processes}/{first['id']}/Cancel", headers=x.headers))
    assert cancelled["status"] == "Cancelled" and cancelled["cancelledByDevice"]
    seen = await _until(lambda: _external_events(http, a), 30, "A's sync to show it")
    assert [e["type"] for e in seen] == ["PeerDeletionCancelled"], seen
    assert await _peer_deletion(http, a, rel_a) is None
    assert _ok(await http.get("/api/v1/Identities/Self", headers=x.headers))["status"] == "Active"

    # Now for real, with a grace period of seconds; the worker dies half-way through.
    key_id = EnvelopeCodec(stack.master_key_b64, lambda k: b"").identity_key_id(x.address)
    _ok(await http.post(processes, json={"lengthOfGracePeriodInDays": 1}, headers=x.headers), 201)
    await _until(
        lambda: asyncio.to_thread(_log_has, stack.worker, b"pausing half-way"),
        60,
        "the final step to begin",
    )
    stack.worker.stop(signal.SIGKILL, timeout=10)
    await asyncio.to_thread(stack.start_worker, stack.worker2)

    async def deleted() -> bool:
        answer = await http.get("/api/v2/Identities/IsDeleted", params={"username": x.usernames[0]})
        return bool(answer.json()["result"]["isDeleted"])

    await _until(deleted, 120, "the second worker to finish the deletion")
    assert _log_has(stack.worker2, b"identity deletion: final step began")
    for username in x.usernames:
        assert (await _login(http, username)).status_code == 400
    assert (await http.get("/api/v1/Identities/Self", headers=x.headers)).status_code == 401

    # No row of the whole keyspace names it.
    needles = [x.address, key_id, *x.usernames]
    live = stack.cluster.keyspace
    assert await asyncio.to_thread(_traces, cassandra_session, live, needles) == []

    # Every record sealed with its key fails to open with the master key.
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    settings = BackboneSettings.from_env()  # the stack's, as an operator's tool reads them
    cluster, session = await asyncio.to_thread(connect, stack.cluster, live)
    try:
        wrapped = await wrapped_data_keys(settings, session)
    finally:
        await asyncio.to_thread(cluster.shutdown)
    assert key_id not in wrapped
    keys = unwrap_all(stack.master_key_b64, wrapped)
    operator = EnvelopeCodec(stack.master_key_b64, keys.__getitem__)
    sealed = 0
    for topic in ("events", "mailbox-entries"):
        log = await read_records(
            stack.cluster.kafka_bootstrap, f"{stack.cluster.topic_prefix}{topic}"
        )
        for _, record in log:
            if record is not None and codec.decode(record)[1]["data_key_id"] == key_id:
                sealed += 1
                with pytest.raises(KeyError):
                    operator.open(record)
    assert sealed >= 10  # its identity, devices, messages, relationships, mailbox entries
    changelog = f"{settings.app_id}-data-keys-changelog"
    records = await read_records(stack.cluster.kafka_bootstrap, changelog)
    last = {json.loads(k): v for k, v in records if k is not None}
    assert key_id in last and last[key_id] is None  # the tombstone

    # The deciders' own state forgot it too: no latest value of the token, template, file,
    # message and pair changelogs (sealed with the master-derived table key) names it.
    tables = SealedJson(derive_key(base64.b64decode(stack.master_key_b64), b"backbone/table-key"))

    async def forgotten() -> list[str]:
        naming = []
        for table in ("tokens", "templates", "files", "messages", "pairs"):
            topic = f"{settings.app_id}-{table}-changelog"
            latest = dict(await read_records(stack.cluster.kafka_bootstrap, topic))
            naming += [table for v in latest.values() if v and x.address in str(tables._loads(v))]
        return naming

    assert await _until(lambda: _not(forgotten), 30, "the deciders to forget X") is True
    pairs = await read_records(stack.cluster.kafka_bootstrap, f"{settings.app_id}-pairs-changelog")
    opened = " ".join(str(tables._loads(v)) for _, v in pairs if v)
    assert a.address in opened and anonymous_address(x.address) in opened  # the peer's, kept

    # Its peers keep what is theirs.
    anon = anonymous_address(x.address)
    for peer in (a, b):
        message = _ok(await http.get(f"/api/v1/Messages/{from_x}", headers=peer.headers))
        assert message["createdBy"] == anon
        assert base64.b64decode(message["body"]) == b"from X to both"
    assert (
        _ok(await http.get(f"/api/v1/Messages/{to_x}", headers=a.headers))["createdBy"] == a.address
    )
    for peer, rid in ((a, rel_a), (b, rel_b)):
        relationship = _ok(await http.get(f"/api/v1/Relationships/{rid}", headers=peer.headers))
        assert x.address not in json.dumps(relationship)
    assert (
        _ok(await http.get(f"/api/v1/Tokens/{a_token}", headers=a.headers))["forIdentity"] == anon
    )
    assert "PeerDeleted" in [e["type"] for e in await _external_events(http, b)]
    for peer, rid in ((a, rel_a), (b, rel_b)):
        assert (await _peer_deletion(http, peer, rid) or {}).get("deletionStatus") == "Deleted"

    # The operator's audit record, from the hashes.
    answer = await _backbone(stack, "deleted", "--address", x.address, "--json")
    assert answer.returncode == 0 and json.loads(answer.stdout)["deleted"], answer.stderr
    assert (await _backbone(stack, "deleted", "--address", a.address)).returncode == 1

    # A replay into a fresh keyspace brings none of it back, and says what it skipped.
    fresh = f"{live}_r"
    replay = await _backbone(stack, "replay", "--keyspace", fresh)
    assert replay.returncode == 0, replay.stderr
    assert "skipped" in replay.stdout and " 0 skipped" not in replay.stdout, replay.stdout
    traces = await asyncio.to_thread(_traces, cassandra_session, fresh, needles)
    assert traces == [], replay.stdout
    # The peers' messages come back whole: X's MessageSent no longer opens, but each
    # recipient's copy was recorded under that recipient's key before the shredding.
    compared = await asyncio.to_thread(compare, cassandra_session, live, fresh)
    messages = {"messages", "message_recipients", "messages_by_identity", "peer_deletions"}
    different = [r.line() for r in compared if r.table in messages and not r.identical]
    assert different == [], different
