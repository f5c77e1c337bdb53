"""The challenge gate's rule: a challenge id is used once, whichever key signed it.

A signed challenge proves possession of a key; the identity decider remembered the ids each
identity used, but a second identity (another key signing the same challenge) is another
aggregate, so the same challenge created 8 identities when 8 keys signed it (issue 19).
The gate is keyed by the challenge id: `CreateIdentity` and `AddDevice` reach the identity
commands topic first under the challenge's key, the one worker that owns that key lets the
first correlation id through and refuses every other, then forwards the command to the
identity's own key (streams/agent_steps.py, `IdentitySteps.gate`). Single writer per challenge, no
Cassandra lightweight transaction, no race between API replicas.

Pure, like every decider: the agent keeps the returned state in its table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.decision import Rejection
from schemas.commands import AddDevice, CreateIdentity

CHALLENGE_USED = "error.platform.validation.device.challengeAlreadyUsed"
CHALLENGE_EXPIRED = "error.platform.validation.device.challengeHasExpired"


def decide(
    used: dict[str, Any] | None,
    correlation_id: str,
    command: CreateIdentity | AddDevice,
    now: datetime,
) -> dict[str, Any] | Rejection:
    """The gate's new state (the challenge now used by this request), or a rejection.

    The same correlation id passes again: a command redelivered after a crash, or an
    Idempotency-Key retry, must reach the identity decider, which answers its first outcome.
    """
    if used is not None:
        if used.get("correlation_id") == correlation_id:
            return used
        return Rejection(CHALLENGE_USED, "the challenge was used before; get a new one")
    if command.challenge_expires_at <= now:
        return Rejection(CHALLENGE_EXPIRED, "the challenge has expired; get a new one")
    return {
        "correlation_id": correlation_id,
        "expires_at": command.challenge_expires_at.timestamp(),
    }
