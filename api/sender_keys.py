"""The data keys of the identities that send messages through this API process.

A message's `MessageSent` is a fact once the API has validated it: the API appends it to
the event log itself (no decider hop), sealed like every event with the sender's data key.
The key is read from the `data_keys` table (wrapped with the master key, written by the
worker that created the identity before any of its events) on the sender's first message,
and kept; only senders' keys are ever loaded here.

A key is read again after RECHECK_S: an identity's deletion destroys its key
(crypto-shredding, streams/deletion_final.py) and this process learns of it by finding the
row gone, so a shredded key lingers here at most that long. By then the identity's devices
are gone as well, so no request could have used it.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable

from cassandra.cluster import Session

from backbone.security.logcrypto import MasterKey
from store.cassandra import run_prepared

# About 100 bytes each: a busy API process keeps its recent senders' keys, not everyone's.
MAX_KEYS = 100_000
# One Cassandra read per active sender and minute bounds how long a shredded key stays here.
RECHECK_S = 60.0


class SenderKeys:
    # `session` gives the session on the active keyspace (a switch may change it).
    def __init__(self, master_key_b64: str, session: Callable[[], Session]) -> None:
        self._master = MasterKey.from_base64(master_key_b64)
        self._session = session
        self._plain: OrderedDict[str, bytes] = OrderedDict()
        self._loaded_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"SenderKeys(<{len(self._plain)} keys redacted>)"

    def get(self, key_id: str) -> bytes:
        """The plain key, as EnvelopeCodec asks for it; KeyError when not loaded."""
        key = self._plain[key_id]
        self._plain.move_to_end(key_id)
        return key

    async def load(self, key_id: str) -> None:
        """Make `key_id` available to `get`; KeyError when the backbone has no such key."""
        if key_id in self._plain and time.monotonic() - self._loaded_at[key_id] < RECHECK_S:
            return
        row = (
            await run_prepared(
                self._session(), "SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)
            )
        ).one()
        if row is None:
            self.forget(key_id)  # shredded since it was loaded
            raise KeyError(key_id)
        self._plain[key_id] = self._master.unwrap(base64.b64decode(row.wrapped), key_id)
        self._plain.move_to_end(key_id)
        self._loaded_at[key_id] = time.monotonic()
        while len(self._plain) > MAX_KEYS:
            oldest, _ = self._plain.popitem(last=False)
            self._loaded_at.pop(oldest, None)

    def forget(self, key_id: str) -> None:
        self._plain.pop(key_id, None)
        self._loaded_at.pop(key_id, None)
