"""Removes a deleted identity from every read model, keeping its peers' own data.

Erased: the identity, its devices and logins, its tokens, templates (with their
allocations), files and their chunks, its mailbox, head and cursors, its sync runs and
errors, its datawallet, its deletion processes, its side of every relationship, and its
place as recipient of messages. Kept, with its address replaced by upstream's anonymous
address: the messages it sent (its recipients hold the keys to them), the relationships
its peers had with it and their audit entries, the tokens and templates peers made for
it, and the entries in its peers' mailboxes that named it.

Every step is idempotent (a delete, or a replacement of the address by the anonymous one),
so a worker that dies half-way leaves the rest to the next one, which runs it all again.
Deletes carry no `USING TIMESTAMP`, i.e. the current time, far above the version
timestamps of the projections: a late or redelivered event cannot bring a row back.
A few tables have no index by identity (files, sync runs, tokens and templates by the
identity they are for); those are read with `ALLOW FILTERING`, a full scan, acceptable for
a step that runs once per deleted identity and only in a worker, never in a request.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session

from backbone.deletion_policy import anonymous_address, sha256_hex
from domain.relationship_decider import pair_id
from store.cassandra import execute

log = logging.getLogger("backbone.streams.deletion")

# A device id in upstream's shape (3 letters + 17 characters) that belongs to nobody.
ANONYMOUS_DEVICE = "DVCANONYMIZED0000000"


# Tables partitioned by the identity, and their partition key column.
_PARTITIONS = (
    *(
        (t, "address")
        for t in (
            "identities",
            "devices",
            "mailbox",
            "mailbox_heads",
            "mailbox_cursors",
            "sync_errors",
            "datawallet_modifications",
            "datawallets",
            "deletion_processes",
            "messages_by_identity",
            "relationships_by_identity",
            "relationship_peers",
        )
    ),
    ("tokens_by_owner", "owner"),
    ("templates_by_owner", "owner"),
)


@dataclass
class Erased:
    """What one run removed or anonymized, for the log (counts, never addresses)."""

    rows: int = 0
    anonymized: int = 0
    peers: set[str] = field(default_factory=set)


async def _all(session: Session, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    # Every page, on the driver's thread: a scan may span many pages.
    return await asyncio.to_thread(lambda: list(session.execute(cql, params)))


async def _run(session: Session, cql: str, params: tuple[Any, ...]) -> None:
    await execute(session, cql, params)


async def erase_identity(
    session: Session, address: str, usernames: set[str], peers: set[str]
) -> tuple[Erased, set[str]]:
    """Erase `address` from the read models; returns the counts and every username found
    (the decider's and the devices table's, deleted devices included). `peers`: those known
    before a first run anonymized the rows that named them (their mailboxes are scanned)."""
    anon = anonymous_address(address)
    out = Erased(peers=set(peers))
    devices = await _all(session, "SELECT id, username FROM devices WHERE address = %s", (address,))
    usernames = set(usernames) | {d.username for d in devices if d.username}
    for username in usernames:
        await _run(session, "DELETE FROM devices_by_username WHERE username = %s", (username,))
    await _owned(session, address, out)
    await _messages(session, address, anon, out)
    await _relationships(session, address, anon, out)
    await _for_identity(session, address, anon, out)
    for peer in sorted(out.peers - {address, anon}):
        await _peer_mailbox(session, peer, address, anon, out)
        # Its row in the peer's view, also of a relationship whose own row did not come
        # back in a replay (its creation was the deleted identity's event).
        await _run(
            session,
            "DELETE FROM relationship_peers WHERE address = %s AND peer = %s",
            (peer, address),
        )
        # Its allocations on the peer's templates, likewise.
        for t in await _all(session, "SELECT id FROM templates_by_owner WHERE owner = %s", (peer,)):
            await _run(
                session,
                "DELETE FROM template_allocations WHERE template_id = %s AND requester = %s",
                (t.id, address),
            )
    for table, column in _PARTITIONS:
        # The identity's own partitions: dropped last, after the lists in them were followed.
        await _run(session, f"DELETE FROM {table} WHERE {column} = %s", (address,))  # noqa: S608
        out.rows += 1
    return out, usernames


async def _owned(session: Session, address: str, out: Erased) -> None:
    for row in await _all(session, "SELECT id FROM tokens_by_owner WHERE owner = %s", (address,)):
        await _run(session, "DELETE FROM tokens WHERE id = %s", (row.id,))
        out.rows += 1
    templates = await _all(
        session, "SELECT id FROM templates_by_owner WHERE owner = %s", (address,)
    )
    for row in templates:
        await _run(session, "DELETE FROM templates WHERE id = %s", (row.id,))
        await _run(session, "DELETE FROM template_allocations WHERE template_id = %s", (row.id,))
        out.rows += 2
    files = await _all(session, "SELECT id FROM files WHERE owner = %s ALLOW FILTERING", (address,))
    for row in files:
        await _run(session, "DELETE FROM file_chunks WHERE file_id = %s", (row.id,))
        await _run(session, "DELETE FROM files WHERE id = %s", (row.id,))
        out.rows += 2
    runs = await _all(
        session, "SELECT id FROM sync_runs WHERE address = %s ALLOW FILTERING", (address,)
    )
    for row in runs:
        await _run(session, "DELETE FROM sync_runs WHERE id = %s", (row.id,))
        out.rows += 1


async def _messages(session: Session, address: str, anon: str, out: Erased) -> None:
    listed = await _all(
        session, "SELECT id FROM messages_by_identity WHERE address = %s", (address,)
    )
    for row in listed:
        message = (await _all(session, "SELECT sender FROM messages WHERE id = %s", (row.id,))) or [
            None
        ]
        recipients = await _all(
            session, "SELECT address FROM message_recipients WHERE message_id = %s", (row.id,)
        )
        if message[0] is not None and message[0].sender == address:
            # Its recipients keep the message, from nobody in particular.
            await _run(
                session,
                "UPDATE messages SET sender = %s, sender_device = %s WHERE id = %s",
                (anon, ANONYMOUS_DEVICE, row.id),
            )
            out.anonymized += 1
        elif message[0] is not None:
            out.peers.add(message[0].sender)
        out.peers.update(r.address for r in recipients)
        await _run(
            session,
            "DELETE FROM message_recipients WHERE message_id = %s AND address = %s",
            (row.id, address),
        )
        out.rows += 1


async def _relationships(session: Session, address: str, anon: str, out: Erased) -> None:
    listed = await _all(
        session, "SELECT id FROM relationships_by_identity WHERE address = %s", (address,)
    )
    for row in listed:
        # What it was shown of a peer's own deletion (`peerDeletionInfo`).
        await _run(
            session,
            "DELETE FROM peer_deletions WHERE relationship_id = %s AND address = %s",
            (row.id, address),
        )
        found = await _all(
            session,
            "SELECT template_id, from_address, to_address, reactivation_requested_by"
            " FROM relationships WHERE id = %s",
            (row.id,),
        )
        if not found:
            continue
        r = found[0]
        peer = r.to_address if r.from_address == address else r.from_address
        if peer != anon:
            out.peers.add(peer)
            await _run(
                session,
                "DELETE FROM relationship_peers WHERE address = %s AND"
                " peer = %s AND relationship_id = %s",
                (peer, address, row.id),
            )
        if r.from_address == address:
            await _run(
                session,
                "UPDATE relationships SET from_address = %s, from_device = %s WHERE id = %s",
                (anon, ANONYMOUS_DEVICE, row.id),
            )
            if r.template_id:
                await _run(
                    session,
                    "DELETE FROM template_allocations WHERE template_id = %s AND requester = %s",
                    (r.template_id, address),
                )
        if r.to_address == address:
            await _run(
                session, "UPDATE relationships SET to_address = %s WHERE id = %s", (anon, row.id)
            )
        if r.reactivation_requested_by == address:
            await _run(
                session,
                "UPDATE relationships SET reactivation_requested_by = %s WHERE id = %s",
                (anon, row.id),
            )
        audit = await _all(
            session,
            "SELECT version, created_by FROM relationship_audit WHERE relationship_id = %s",
            (row.id,),
        )
        for entry in audit:
            if entry.created_by == address:
                await _run(
                    session,
                    "UPDATE relationship_audit SET created_by = %s,"
                    " created_by_device = %s WHERE relationship_id = %s AND version = %s",
                    (anon, ANONYMOUS_DEVICE, row.id, entry.version),
                )
        out.anonymized += 1


async def _for_identity(session: Session, address: str, anon: str, out: Erased) -> None:
    # Peers' tokens and templates meant for the identity stay theirs; nobody can read them
    # any more, as with an anonymous address nobody can log in.
    for table in ("tokens", "templates"):
        rows = await _all(
            session,
            f"SELECT id, owner FROM {table} WHERE for_identity = %s ALLOW FILTERING",  # noqa: S608
            (address,),
        )
        for row in rows:
            await _run(
                session,
                f"UPDATE {table} SET for_identity = %s WHERE id = %s",  # noqa: S608
                (anon, row.id),
            )
            out.peers.add(row.owner)
            out.anonymized += 1


async def _peer_mailbox(session: Session, peer: str, address: str, anon: str, out: Erased) -> None:
    """A peer's mailbox entries that name the identity (a message it sent, its receipt, its
    side of a relationship change) keep their place and index, with the address replaced."""
    entries = await _all(session, "SELECT idx, payload FROM mailbox WHERE address = %s", (peer,))
    for entry in entries:
        if entry.payload and address in entry.payload:
            await _run(
                session,
                "UPDATE mailbox SET payload = %s WHERE address = %s AND idx = %s",
                (entry.payload.replace(address, anon), peer, entry.idx),
            )
            out.anonymized += 1


async def sent_messages(session: Session, address: str) -> list[tuple[Any, list[Any]]]:
    """The messages `address` sent that the read models still hold (not expired), each with
    its recipients' rows: read by the final step before anything is erased, to record each
    recipient's copy under that recipient's key (streams/deletion_final.py)."""
    out = []
    listed = await _all(
        session, "SELECT id FROM messages_by_identity WHERE address = %s", (address,)
    )
    for row in listed:
        found = await _all(
            session,
            "SELECT id, sender, body, attachments, created_at FROM messages WHERE id = %s",
            (row.id,),
        )
        if found and found[0].sender == address:
            recipients = await _all(
                session,
                "SELECT address, encrypted_key FROM message_recipients WHERE message_id = %s",
                (row.id,),
            )
            out.append((found[0], recipients))
    return out


async def aggregates_of(session: Session, address: str) -> list[tuple[str, str]]:
    """(aggregate type, id) of every decider aggregate whose state names `address`: what it
    owned (tokens, templates, files), the messages it sent or received, its relationships'
    pairs, and the peers' templates it allocated on or that were made for it. Read before
    anything is erased (domain/deletion_forget.py)."""
    found: set[tuple[str, str]] = set()
    for table, kind in (("tokens_by_owner", "token"), ("templates_by_owner", "template")):
        rows = await _all(session, f"SELECT id FROM {table} WHERE owner = %s", (address,))  # noqa: S608
        found.update((kind, r.id) for r in rows)
    files = await _all(session, "SELECT id FROM files WHERE owner = %s ALLOW FILTERING", (address,))
    found.update(("file", r.id) for r in files)
    made_for = await _all(
        session, "SELECT id FROM templates WHERE for_identity = %s ALLOW FILTERING", (address,)
    )
    found.update(("template", r.id) for r in made_for)
    listed = await _all(
        session, "SELECT id FROM messages_by_identity WHERE address = %s", (address,)
    )
    found.update(("message", r.id) for r in listed)
    for row in await _all(
        session, "SELECT id FROM relationships_by_identity WHERE address = %s", (address,)
    ):
        rel = await _all(
            session,
            "SELECT template_id, from_address, to_address FROM relationships WHERE id = %s",
            (row.id,),
        )
        if rel:
            found.add(("pair", pair_id(rel[0].from_address, rel[0].to_address)))
            if rel[0].template_id:
                found.add(("template", rel[0].template_id))
    return sorted(found)


async def relationships_of(session: Session, address: str) -> list[tuple[str, str]]:
    """(peer, relationship id) of the identity's relationships, read before anything is
    erased: the final step keeps this list in the identity's state, so that a worker taking
    over after a crash still tells every peer."""
    out = []
    listed = await _all(
        session, "SELECT id FROM relationships_by_identity WHERE address = %s", (address,)
    )
    for row in listed:
        found = await _all(
            session, "SELECT from_address, to_address FROM relationships WHERE id = %s", (row.id,)
        )
        if found:
            r = found[0]
            out.append((r.to_address if r.from_address == address else r.from_address, row.id))
    return sorted(out)


_ADDRESS = re.compile(r"did:e:[a-z0-9.-]+:dids:[0-9a-f]{22}")


def addresses_in(body: dict[str, Any]) -> set[str]:
    """The identity addresses a record's body names: in its text fields, in the records of
    its lists (a message's recipients, a deletion's peers) and inside JSON text (a mailbox
    entry's payload). Byte fields are not looked at."""
    found: set[str] = set()
    for value in body.values():
        items = value if isinstance(value, list) else [value]
        for item in items:
            texts = item.values() if isinstance(item, dict) else [item]
            for text in texts:
                if isinstance(text, str) and "did:e:" in text:
                    found.update(_ADDRESS.findall(text))
    return found


class DeletedNamed:
    """For a replay: which deleted identities the opened records name, and who else the
    same records name (its peers, whose rows and mailboxes are then cleaned). Only the
    identities the live audit record lists as deleted are followed, so the memory this
    takes is that of the deleted identities' contacts, not of the whole log."""

    def __init__(self, deleted_hashes: set[str]) -> None:
        self._deleted = deleted_hashes
        self.peers: dict[str, set[str]] = {}

    @classmethod
    async def load(cls, live: Session) -> DeletedNamed:
        rows = await _all(live, "SELECT address_hash FROM deleted_identities")
        return cls({r.address_hash for r in rows})

    def note(self, body: dict[str, Any]) -> None:
        if not self._deleted:
            return
        found = addresses_in(body)
        for address in found:
            if sha256_hex(address) in self._deleted:
                self.peers.setdefault(address, set()).update(found - {address})

    async def erase(self, session: Session) -> int:
        """Erase, as the live final step did, every deleted identity the records named: its
        own records did not open (its key is gone), but its peers' named it (a relationship,
        a message to it, an allocation, an entry in a peer's mailbox) and brought rows of
        it back. Returns how many identities were erased."""
        for address, peers in sorted(self.peers.items()):
            await erase_identity(session, address, set(), peers)
        return len(self.peers)
