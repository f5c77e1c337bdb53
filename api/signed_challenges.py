"""The `signedChallenge` of identity creation and device registration, checked at the edge.

The API checks what it can without state (our tag in the challenge id, the client's
signature, the expiry); single use is the challenge gate's job in the workers, because
only a single writer per challenge id can say "not used before" without a race.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.errors import ApiError
from api.state import ApiState
from backbone.security.challenges import (
    CHALLENGE_INVALID,
    Challenge,
    ChallengeError,
    claimed_type,
)
from schemas.signatures import parse_signature

INVALID_SIGNATURE_FORMAT = "error.platform.validation.device.invalidSignature"


class SignedChallenge(BaseModel):
    challenge: str = Field(min_length=2, max_length=2000)
    signature: str = Field(min_length=1, max_length=1000)


Purpose = Literal["CreateIdentity", "RegisterDevice"]
# The `type` the signed text may claim per purpose (None: a client that signed the DTO).
# Both are signed with the identity key, which is what is verified. nmshd/runtime claims
# `Identity` for both; this project's Connector claims `Device` for a device registration.
_TYPES: dict[str, tuple[str | None, ...]] = {
    "CreateIdentity": (None, "Identity"),
    "RegisterDevice": (None, "Identity", "Device"),
}


def check_signed_challenge(
    state: ApiState,
    signed: SignedChallenge,
    public_key: bytes,
    purpose: Purpose,
    caller_address: str | None = None,
) -> Challenge:
    """The challenge, if authentic, signed by `public_key`, unexpired and issued for
    `purpose`: identity creation takes an anonymous challenge, device registration one
    its own identity fetched with a token (what nmshd/runtime does). A challenge a device
    got used for identity creation, or text claiming another purpose, is refused, so that
    one challenge serves one use only (issue 19)."""
    try:
        signature = parse_signature(signed.signature)
    except ValueError as exc:
        raise ApiError(400, INVALID_SIGNATURE_FORMAT, f"signature: {exc}") from exc
    try:
        challenge = state.challenges.verify_signed_challenge(
            signed.challenge, signature, public_key, datetime.now(UTC)
        )
        kind = claimed_type(signed.challenge)
    except ChallengeError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    if kind not in _TYPES[purpose]:
        raise ApiError(400, CHALLENGE_INVALID, f"a challenge of type {kind} cannot be used here")
    if purpose == "CreateIdentity" and challenge.created_by is not None:
        raise ApiError(400, CHALLENGE_INVALID, "identity creation takes an anonymous challenge")
    if purpose == "RegisterDevice" and challenge.created_by != caller_address:
        raise ApiError(
            400, CHALLENGE_INVALID, "device registration takes a challenge of this identity"
        )
    return challenge
