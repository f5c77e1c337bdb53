"""The `signedChallenge` of identity creation and device registration, checked at the edge.

The API checks what it can without state (our tag in the challenge id, the client's
signature, the expiry); single use is the challenge gate's job in the workers, because
only a single writer per challenge id can say "not used before" without a race.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from api.errors import ApiError
from api.state import ApiState
from backbone.security.challenges import Challenge, ChallengeError
from schemas.signatures import parse_signature

INVALID_SIGNATURE_FORMAT = "error.platform.validation.device.invalidSignature"


class SignedChallenge(BaseModel):
    challenge: str = Field(min_length=2, max_length=2000)
    signature: str = Field(min_length=1, max_length=1000)


def check_signed_challenge(
    state: ApiState, signed: SignedChallenge, public_key: bytes
) -> Challenge:
    try:
        signature = parse_signature(signed.signature)
    except ValueError as exc:
        raise ApiError(400, INVALID_SIGNATURE_FORMAT, f"signature: {exc}") from exc
    try:
        return state.challenges.verify_signed_challenge(
            signed.challenge, signature, public_key, datetime.now(UTC)
        )
    except ChallengeError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
