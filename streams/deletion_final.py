"""The end of an identity's grace period: found by any worker, run by one, finished for sure.

Two halves:

- `DueDeletions.poll`, on a timer in every worker, reads `due_deletions` (projected from
  `IdentityDeletionStarted`, removed by a cancellation or by the audit record) and, for an
  identity whose period is over, takes a short lease in Cassandra (a lightweight
  transaction, `INSERT ... IF NOT EXISTS USING TTL`) and appends `FinishIdentityDeletion`
  to the identity's command partition. The lease only keeps N workers from sending N
  copies; a copy too many is harmless.
- `FinalDeletion.run` is called by the identity's agent for that command. The identity's
  partition has one owner at a time, so the step runs once however many workers there are,
  in order with the identity's other commands (none is accepted once it began). A worker
  killed in the middle never commits the command's offset: Kafka hands the partition and
  the command to another worker, which runs the step again. Should the command itself be
  lost, the due row is still there and the next poll after the lease expires sends it again.

Why the identity's agent and not a worker holding a Cassandra lease for the whole step: the
data key's tombstone must go to the changelog partition the key was written to, which faust
does only from that agent (a table write takes the current record's partition); the
identity's state (status Deleting, then the erased marker) is written by its single writer;
and Kafka's group rebalance already is the fail-over a lease would have to rebuild.

The step, each part idempotent, with the state written first so a successor knows:

1. state -> Deleting (the decider refuses every command from here on), keeping the list of
   relationships to tell;
2. the data key is destroyed (streams/data_keys.py `shred`): events of the identity still
   in flight can no longer be opened, so they cannot recreate what step 4 removes;
3. every message it sent that the read models still hold is recorded again for each
   recipient, `MessageKeptForRecipient` sealed with the recipient's key and the sender
   anonymized: its `MessageSent` no longer opens, so without this a replay would lose the
   peers' received messages. Done once (a flag in the state), before step 4 touches the
   rows it reads; event ids derived from (process, message, recipient), so a rerun after
   a crash sends the same records, which the projection absorbs;
   Likewise once (flag "forgotten"), `ForgetIdentity` to every token, template, file,
   message and pair aggregate whose decider state names it (domain/deletion_forget.py):
   those changelogs are sealed with a master-derived key, not its data key;
4. its read-model rows are erased, its peers' anonymized (streams/deletion_erase.py);
5. one `PeerDeleted` per relationship, sealed with the peer's key, for its mailbox;
6. the audit record `IdentityDeleted` (system key: only hashes), which also removes the
   due row;
7. state -> the erased marker (no address, no usernames).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session

from backbone.deletion_policy import DeletionSettings, anonymous_address, sha256_hex
from domain import identity_decider
from store.cassandra import execute, was_applied
from store.envelopes import SYSTEM_KEY_ID, EnvelopeCodec, Opened
from store.retrying import until_done
from streams.data_keys import DataKeys
from streams.deciding import wait_for_key
from streams.deletion_erase import (
    ANONYMOUS_DEVICE,
    aggregates_of,
    erase_identity,
    relationships_of,
    sent_messages,
)
from streams.deletion_readmodels import DUE_BUCKET

log = logging.getLogger("backbone.streams.deletion")

Send = Callable[[str, bytes], Awaitable[None]]  # (record key, value), awaited until acked
# (aggregate type, record key, value) to that aggregate type's command topic
SendCommand = Callable[[str, str, bytes], Awaitable[None]]

_IDS = uuid.UUID("0b7f5c1e-3d4a-4f0e-9c83-2a6d1e9b5f42")


def _event_id(*parts: str) -> str:
    # The same on every run of the step: the projection and the sequencer see a repeat.
    return str(uuid.uuid5(_IDS, "/".join(parts)))


class DueDeletions:
    def __init__(
        self,
        session: Callable[[], Awaitable[Session]],
        envelopes: EnvelopeCodec,
        send_command: Send,
        settings: DeletionSettings,
        owner: str,
    ) -> None:
        self._session = session
        self._envelopes = envelopes
        self._send = send_command
        self._settings = settings
        self._owner = owner

    async def poll(self, now: datetime | None = None) -> int:
        """Send the final command of every deletion that is due and not leased by another
        worker; returns how many this worker sent."""
        now = now or datetime.now(UTC)
        session = await self._session()
        due = await execute(
            session,
            "SELECT identity_key, deletion_process_id, due_at FROM due_deletions WHERE bucket = %s",
            (DUE_BUCKET,),
        )
        sent = 0
        for row in list(due):
            if row.due_at.replace(tzinfo=UTC) > now:
                continue
            lease = await execute(
                session,
                "INSERT INTO deletion_leases (identity_key, owner) VALUES (%s, %s)"
                " IF NOT EXISTS USING TTL %s",
                (row.identity_key, self._owner, self._settings.lease_s),
            )
            if not was_applied(lease):
                continue
            pid = row.deletion_process_id
            command = self._envelopes.seal(
                "FinishIdentityDeletion",
                {"deletion_process_id": pid, "requested_at": now},
                aggregate_key=row.identity_key,
                correlation_id=f"deletion-{pid}",
            )
            await self._send(row.identity_key, command)
            sent += 1
        return sent


class FinalDeletion:
    def __init__(
        self,
        table: Any,  # the identity decider's faust table
        keys: DataKeys,
        session: Callable[[], Awaitable[Session]],
        envelopes: EnvelopeCodec,
        send_event: Send,
        pause_s: float = 0.0,
        send_command: SendCommand | None = None,
    ) -> None:
        self._send_command = send_command
        self._pause_s = pause_s
        self._table = table
        self._keys = keys
        self._session = session
        self._envelopes = envelopes
        self._send = send_event

    async def run(self, agg: str, command: Opened, now: datetime | None = None) -> bool:
        """Run (or finish) the final step; False when it is not due: cancelled, done, early,
        or a stale command of an older process."""
        now = now or datetime.now(UTC)
        stored: dict[str, Any] = self._table.get(agg) or {}
        state = identity_decider.IdentityState.from_dict(stored or None)
        pid = command.body["deletion_process_id"]
        if not identity_decider.finish_due(state, pid, now):
            return False
        session = await self._session()
        assert state.deletion is not None
        log.info("identity deletion: final step began", extra={"again": state.status == "Deleting"})
        if state.status != "Deleting":
            relationships = await until_done(
                lambda: relationships_of(session, state.address), "reading relationships failed"
            )
            state = identity_decider.deleting(state)
            state.deletion = {**(state.deletion or {}), "peers": relationships}
            self._table[agg] = {**state.to_dict(), "handled": stored.get("handled", {})}
        deletion = state.deletion or {}
        peers = [(str(p), str(r)) for p, r in deletion.get("peers", [])]
        address = state.address
        await until_done(
            lambda: self._keys.shred(self._envelopes.identity_key_id(address)),
            "shredding a data key failed",
        )
        if not deletion.get("kept"):
            kept = await self._keep_sent_messages(pid, address, session)
            state.deletion = deletion = {**deletion, "kept": True}
            self._table[agg] = {**state.to_dict(), "handled": stored.get("handled", {})}
            log.info(
                "identity deletion: sent messages kept for their recipients",
                extra={"records": kept},
            )
        if not deletion.get("forgotten") and self._send_command is not None:
            told = await self._forget(pid, address, session)
            state.deletion = deletion = {**deletion, "forgotten": True}
            self._table[agg] = {**state.to_dict(), "handled": stored.get("handled", {})}
            log.info("identity deletion: deciders told to forget it", extra={"aggregates": told})
        erased, usernames = await until_done(
            lambda: erase_identity(
                session, address, set(state.devices.values()), {p for p, _ in peers}
            ),
            "erasing an identity failed",
        )
        if self._pause_s:
            log.info("identity deletion: pausing half-way (BACKBONE_DELETION_STEP_PAUSE_S)")
            await asyncio.sleep(self._pause_s)
        for peer, relationship_id in peers:
            await self._peer_deleted(agg, pid, peer, relationship_id, now)
        audit = {
            "address_hash": sha256_hex(address),
            "username_hashes": sorted(sha256_hex(u) for u in usernames),
            "data_key_hash": sha256_hex(self._envelopes.identity_key_id(address)),
            "identity_key": agg,
            "deletion_process_id": pid,
            "deletion_started_at": datetime.fromtimestamp(deletion["created_at"], UTC),
            "deleted_at": now,
        }
        record = self._envelopes.seal(
            "IdentityDeleted",
            audit,
            aggregate_key=agg,
            correlation_id=f"deletion-{pid}",
            data_key_id=SYSTEM_KEY_ID,
            aggregate_version=state.version + 1,
            event_id=_event_id(pid, "audit"),
        )
        await self._send(agg, record)
        self._table[agg] = identity_decider.erased(state).to_dict()
        await until_done(
            lambda: execute(session, "DELETE FROM deletion_leases WHERE identity_key = %s", (agg,)),
            "releasing a deletion lease failed",
        )
        log.info(
            "identity deleted",
            extra={"rows": erased.rows, "anonymized": erased.anonymized, "peers": len(peers)},
        )
        return True

    async def _keep_sent_messages(self, pid: str, address: str, session: Session) -> int:
        anon = anonymous_address(address)
        messages = await until_done(
            lambda: sent_messages(session, address), "reading sent messages failed"
        )
        kept = 0
        for message, recipients in messages:
            aggregate_key = self._envelopes.aggregate_key("message", message.id)
            created = message.created_at.replace(tzinfo=UTC)
            sends = []
            for r in recipients:
                key_id = self._envelopes.identity_key_id(r.address)
                try:
                    await wait_for_key(self._envelopes, key_id)
                except KeyError:
                    continue  # that recipient is deleted too: nobody left to keep it for
                body = {
                    "message_id": message.id,
                    "sender": anon,
                    "sender_device": ANONYMOUS_DEVICE,
                    "body": bytes(message.body),
                    "attachments": list(message.attachments or []),
                    "recipient": r.address,
                    "encrypted_key": bytes(r.encrypted_key),
                    "created_at": created,
                }
                # Version 2: above the MessageSent's 1, so the anonymized sender wins over
                # the original in Cassandra's last-write-wins whatever the order they land.
                record = self._envelopes.seal(
                    "MessageKeptForRecipient",
                    body,
                    aggregate_key=aggregate_key,
                    correlation_id=f"deletion-{pid}",
                    data_key_id=key_id,
                    aggregate_version=2,
                    event_id=_event_id(pid, "kept", message.id, r.address),
                )
                sends.append(self._send(aggregate_key, record))
            await asyncio.gather(*sends)
            kept += len(sends)
        return kept

    async def _forget(self, pid: str, address: str, session: Session) -> int:
        assert self._send_command is not None
        send = self._send_command
        found = await until_done(
            lambda: aggregates_of(session, address), "reading an identity's aggregates failed"
        )
        body = {
            "address_hash": sha256_hex(address),
            "anonymous": anonymous_address(address),
            "deletion_process_id": pid,
        }
        for start in range(0, len(found), 256):  # bounded in flight
            sends = []
            for kind, aggregate_id in found[start : start + 256]:
                key = self._envelopes.aggregate_key(kind, aggregate_id)
                command = self._envelopes.seal(
                    "ForgetIdentity",
                    body,
                    aggregate_key=key,
                    correlation_id=f"deletion-{pid}",
                    event_id=_event_id(pid, "forget", kind, aggregate_id),
                )
                sends.append(send(kind, key, command))
            await asyncio.gather(*sends)
        return len(found)

    async def _peer_deleted(
        self, agg: str, pid: str, peer: str, relationship_id: str, now: datetime
    ) -> None:
        key_id = self._envelopes.identity_key_id(peer)
        try:
            await wait_for_key(self._envelopes, key_id)
        except KeyError:
            return  # the peer is gone too: nobody to tell
        body = {"address": peer, "relationship_id": relationship_id, "deleted_at": now}
        record = self._envelopes.seal(
            "PeerDeleted",
            body,
            aggregate_key=self._envelopes.aggregate_key("identity", peer),
            correlation_id=f"deletion-{pid}",
            data_key_id=key_id,
            aggregate_version=1,
            event_id=_event_id(pid, "peer", relationship_id),
        )
        await self._send(self._envelopes.aggregate_key("identity", peer), record)
