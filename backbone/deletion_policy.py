"""What the API and the workers agree on for an identity's deletion (issue 22).

The grace period is chosen by the client in days within [MIN_DAYS, MAX_DAYS], 14 by
default as upstream. `BACKBONE_DELETION_DAY_S` sets how long such a "day" is: 86400 in
production, a second in the integration test, so that a whole deletion runs in seconds
through the same code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from backbone.security.addresses import address_domain

DEFAULT_DAYS = 14
MIN_DAYS = 1
MAX_DAYS = 90

GRACE_OUT_OF_RANGE = "error.platform.validation.identityDeletionProcess.invalidGracePeriod"


@dataclass(frozen=True)
class DeletionSettings:
    day_s: int = 86_400
    # How often every worker looks for identities whose grace period is over, and how long
    # the one that sent the final command keeps others from sending it again.
    poll_s: float = 30.0
    lease_s: int = 60
    # Tests only: a pause in the middle of the final step, long enough to kill the worker.
    step_pause_s: float = 0.0

    @classmethod
    def from_env(cls) -> DeletionSettings:
        return cls(
            day_s=int(os.environ.get("BACKBONE_DELETION_DAY_S", cls.day_s)),
            poll_s=float(os.environ.get("BACKBONE_DELETION_POLL_S", cls.poll_s)),
            lease_s=int(os.environ.get("BACKBONE_DELETION_LEASE_S", cls.lease_s)),
            step_pause_s=float(os.environ.get("BACKBONE_DELETION_STEP_PAUSE_S", 0.0)),
        )


def grace_period_s(days: int | None, settings: DeletionSettings) -> int | None:
    """The grace period in seconds, or None when `days` is out of the limits."""
    days = DEFAULT_DAYS if days is None else days
    if not MIN_DAYS <= days <= MAX_DAYS:
        return None
    return days * settings.day_s


def sha256_hex(text: str) -> str:
    """How the audit record keeps an address or username (upstream keeps SHA-256 hashes too).
    Addresses carry 80 bits of key hash and usernames 100 bits of randomness, so the hash
    cannot be reversed by trying them all; whoever already knows one can look it up."""
    return hashlib.sha256(text.encode()).hexdigest()


def anonymous_address(address: str) -> str:
    """What replaces a deleted identity's address in its peers' data, as upstream does."""
    try:
        domain = address_domain(address)
    except ValueError:
        domain = "localhost"
    return f"did:e:{domain}:dids:anonymous"


def mailbox_entries(event_name: str, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The peers' mailbox entries of a deletion, in upstream's external event shapes
    (PeerToBeDeleted, PeerDeletionCancelled, PeerDeleted): the relationship and the date,
    never the deleted identity's address."""
    if event_name == "IdentityDeletionStarted":
        date = body["grace_period_ends_at"].isoformat()
        return [
            (
                p["address"],
                "PeerToBeDeleted",
                {"relationshipId": p["relationship_id"], "deletionDate": date},
            )
            for p in body["peers"]
        ]
    if event_name == "IdentityDeletionCancelled":
        return [
            (p["address"], "PeerDeletionCancelled", {"relationshipId": p["relationship_id"]})
            for p in body["peers"]
        ]
    if event_name == "PeerDeleted":
        payload = {
            "relationshipId": body["relationship_id"],
            "deletionDate": body["deleted_at"].isoformat(),
        }
        return [(body["address"], "PeerDeleted", payload)]
    return []


def is_anonymous(address: str) -> bool:
    """An anonymized party (a deleted identity): nobody to route anything to."""
    return address.endswith(":dids:anonymous")
