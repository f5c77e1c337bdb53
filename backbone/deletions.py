"""`backbone deleted`: was this identity deleted, and when? (issue 22)

    backbone deleted --address did:e:localhost:dids:…
    backbone deleted --username USR… [--json]

An operator who is asked about an identity (by its owner, a peer or an authority) hashes
what they were given and looks the hash up in the audit record of deletions
(`deleted_identities`, `deleted_usernames`, projected from the `IdentityDeleted` events,
which are sealed with the system key and so survive the identity's crypto-shredding). The
record keeps only SHA-256 hashes: it answers for an address or username one already has,
and lists nobody. Exit status 0 when found, 1 when not.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from backbone.deletion_policy import sha256_hex
from backbone.settings import BackboneSettings


def lookup(session: Any, address: str | None, username: str | None) -> dict[str, Any] | None:
    """The audit record for an address or a username, or None."""
    if address is not None:
        row = session.execute(
            "SELECT deletion_process_id, deletion_started_at, deleted_at, username_hashes"
            " FROM deleted_identities WHERE address_hash = %s",
            (sha256_hex(address),),
        ).one()
        if row is None:
            return None
        return {
            "deleted": True,
            "deletedAt": row.deleted_at.isoformat() + "Z",
            "deletionStartedAt": row.deletion_started_at.isoformat() + "Z",
            "deletionProcessId": row.deletion_process_id,
            "usernames": len(row.username_hashes or []),
        }
    row = session.execute(
        "SELECT deleted_at FROM deleted_usernames WHERE username_hash = %s",
        (sha256_hex(username or ""),),
    ).one()
    return None if row is None else {"deleted": True, "deletedAt": row.deleted_at.isoformat() + "Z"}


def cmd_deleted(args: argparse.Namespace) -> int:
    from store.cassandra import connect

    settings = BackboneSettings.from_env()
    cluster, session = connect(settings.cluster, settings.cluster.keyspace)
    try:
        found = lookup(session, args.address, args.username)
    finally:
        cluster.shutdown()
    if args.json:
        print(json.dumps(found or {"deleted": False}))
    elif found is None:
        print("no deletion recorded for it")
    else:
        process = found.get("deletionProcessId")
        started = f" (process {process}, started {found['deletionStartedAt']})" if process else ""
        print(f"deleted at {found['deletedAt']}{started}")
    return 0 if found else 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("deleted", help="was an identity deleted, and when (audit record)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--address", help="the identity's address")
    which.add_argument("--username", help="one of its devices' usernames")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_deleted)
