"""The identities' data keys as a worker holds them.

Every event is sealed with its identity's data key, wrapped by the master key. A worker
finds a key in faust's global table `data-keys` (its compacted changelog is where a replay
finds the keys too, and deleting a key there is crypto-shredding), else in Cassandra's
`data_keys` table: a worker that joined later never sees keys another worker made through
the global table. A new key goes to Cassandra first, so that no event sealed with it is on
the log before every worker can open it.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from cassandra.cluster import Session

from backbone.security.logcrypto import MasterKey
from store.cassandra import run_prepared


class DataKeys:
    def __init__(
        self, master: MasterKey, table: Any, session: Callable[[], Awaitable[Session]]
    ) -> None:
        self._master = master
        self._table = table  # the faust GlobalTable: key id -> wrapped key (base64)
        self._session = session
        self._plain: dict[str, bytes] = {}

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
        """A key missing from this worker's global table, read from Cassandra."""
        row = (
            await run_prepared(
                await self._session(), "SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)
            )
        ).one()
        if row is None:
            return False
        self._plain[key_id] = self._master.unwrap(base64.b64decode(row.wrapped), key_id)
        return True
