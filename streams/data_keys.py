"""The identities' data keys as a worker holds them.

Every event is sealed with its identity's data key, wrapped by the master key. A worker
finds a key in faust's global table `data-keys` (its compacted changelog is where a replay
finds the keys too, and deleting a key there is crypto-shredding), else in Cassandra's
`data_keys` table: a worker that joined later never sees keys another worker made through
the global table. A new key goes to Cassandra first, so that no event sealed with it is on
the log before every worker can open it.

Shredding (streams/deletion_final.py) goes the other way: the Cassandra row first, then a
tombstone on the changelog, which every worker's global table applies; each worker then
drops the plain key it kept (`forget_shredded`, on a timer). A key a worker loaded from
Cassandra is not in its global table, so it is kept at most RECHECK_S and then read again.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cassandra.cluster import Session

from backbone.security.logcrypto import MasterKey
from store.cassandra import run_prepared

# How long a worker keeps a plain key it read from Cassandra (not through the global table)
# before it reads it again: the longest a shredded key of that kind lingers in its memory.
RECHECK_S = 60.0


class KeyShredded(KeyError):
    """The key was destroyed (crypto-shredding): a record sealed with it will never open,
    so nobody should wait for it to arrive."""


class DataKeys:
    def __init__(
        self, master: MasterKey, table: Any, session: Callable[[], Awaitable[Session]]
    ) -> None:
        self._master = master
        self._table = table  # the faust GlobalTable: key id -> wrapped key (base64)
        self._session = session
        self._plain: dict[str, bytes] = {}
        self._loaded_at: dict[str, float] = {}  # keys read from Cassandra: when
        self._shredded: set[str] = set()

    def __repr__(self) -> str:
        return f"DataKeys(<{len(self._plain)} keys redacted>)"

    def get(self, key_id: str) -> bytes:
        """The plain key (for EnvelopeCodec); KeyError when this worker has not got it."""
        if key_id not in self._plain:
            wrapped = self._table.get(key_id)
            if wrapped is None:
                raise KeyError(key_id)
            self._plain[key_id] = self._master.unwrap(base64.b64decode(wrapped), key_id)
        return self._plain[key_id]

    async def remember(self, key_id: str, key: bytes) -> None:
        """A new identity's key: in Cassandra (awaited) before the global table."""
        wrapped = base64.b64encode(self._master.wrap(key, key_id)).decode()
        await run_prepared(
            await self._session(),
            "INSERT INTO data_keys (key_id, wrapped) VALUES (?, ?)",
            (key_id, wrapped),
        )
        self._table[key_id] = wrapped
        self._plain[key_id] = key

    async def load(self, key_id: str) -> bool:
        """A key missing from this worker's global table, read from Cassandra; KeyShredded
        when it was destroyed (`shredded_keys` holds a hash of its id)."""
        if key_id in self._shredded:
            raise KeyShredded(key_id)
        session = await self._session()
        row = (
            await run_prepared(session, "SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,))
        ).one()
        if row is None:
            gone = await run_prepared(
                session, "SELECT key_hash FROM shredded_keys WHERE key_hash = ?", (_hash(key_id),)
            )
            if gone.one() is not None:
                self._shredded.add(key_id)
                raise KeyShredded(key_id)
            return False
        self._plain[key_id] = self._master.unwrap(base64.b64decode(row.wrapped), key_id)
        self._loaded_at[key_id] = time.monotonic()
        return True

    async def shred(self, key_id: str) -> None:
        """Destroy a key (crypto-shredding): its Cassandra row, then its changelog entry (a
        tombstone, on the partition of the current event: the identity's, where the key was
        written), then this worker's plain copy. Run in the identity's agent. Idempotent:
        the tombstone is sent even when this worker's table no longer holds the key."""
        session = await self._session()
        await run_prepared(
            session, "INSERT INTO shredded_keys (key_hash) VALUES (?)", (_hash(key_id),)
        )
        await run_prepared(session, "DELETE FROM data_keys WHERE key_id = ?", (key_id,))
        self._shredded.add(key_id)
        with contextlib.suppress(KeyError):  # raised after the tombstone was sent
            del self._table[key_id]  # sends the tombstone first, then drops the local entry
        self._plain.pop(key_id, None)
        self._loaded_at.pop(key_id, None)

    def forget_shredded(self, now: float | None = None) -> int:
        """Drop the plain keys whose changelog entry is gone (shredded on another worker),
        and those read from Cassandra more than RECHECK_S ago; returns how many."""
        now = time.monotonic() if now is None else now
        gone = [
            key_id
            for key_id in self._plain
            if self._table.get(key_id) is None
            and now - self._loaded_at.get(key_id, float("-inf")) > RECHECK_S
        ]
        for key_id in gone:
            del self._plain[key_id]
            self._loaded_at.pop(key_id, None)
        return len(gone)


def _hash(key_id: str) -> str:
    # The id itself names the identity (to whoever holds the master key): only its hash is
    # kept, as in the audit record (streams/deletion_readmodels.py).
    return hashlib.sha256(key_id.encode()).hexdigest()
