"""The data keys an operator's tool may use, as the workers hold them: the last value of
each key in the workers' `data-keys` changelog (a deleted key there is a shredded
identity's: it stays gone), and the keys in the live `data_keys` table the changelog never
got (a worker writes Cassandra first, and may die before its changelog write)."""

from __future__ import annotations

import base64
import json

from cassandra.cluster import Session

from backbone.audit.logread import partitions_of, read_partition
from backbone.security.logcrypto import DecryptionError, MasterKey
from backbone.settings import BackboneSettings
from store.cassandra import execute


async def wrapped_data_keys(settings: BackboneSettings, live: Session) -> dict[str, str]:
    """key id -> wrapped key (base64, sealed with the master key) of every key that still
    exists; `live` is a session on the live keyspace."""
    wrapped: dict[str, str | None] = {}
    topic = f"{settings.app_id}-data-keys-changelog"
    bootstrap = settings.cluster.kafka_bootstrap
    for p in await partitions_of(bootstrap, topic):
        async for r in read_partition(bootstrap, topic, p):
            if r.key is not None:
                wrapped[json.loads(r.key)] = json.loads(r.value) if r.value is not None else None
    for row in await execute(live, "SELECT key_id, wrapped FROM data_keys"):
        wrapped.setdefault(row.key_id, row.wrapped)
    return {key_id: value for key_id, value in wrapped.items() if value is not None}


def unwrap_all(master_key_b64: str, wrapped: dict[str, str]) -> dict[str, bytes]:
    """The plain keys; a key the master key does not open means the wrong master key (or
    a table someone else wrote into), which is said plainly instead of as a traceback."""
    master = MasterKey.from_base64(master_key_b64)
    out = {}
    for key_id, value in wrapped.items():
        try:
            out[key_id] = master.unwrap(base64.b64decode(value), key_id)
        except DecryptionError:
            raise DataKeyError(
                f"data key {key_id} does not open with this master key: is "
                "BACKBONE_MASTER_KEY the one the workers use?"
            ) from None
    return out


class DataKeyError(RuntimeError):
    """A wrapped data key that the configured master key cannot open."""
