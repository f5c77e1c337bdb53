"""Backbone-issued challenges, verifiable later without any database.

Enmeshed stores every challenge and, when a client hands one back signed, looks its id up to
check the expiry. We keep no table: the id itself authenticates the challenge. After the
`CHL` prefix come 6 random characters (a nonce) and an 11-character tag, a keyed BLAKE2b MAC
(8 bytes, base62) over the nonce, the expiry second and `createdBy`/`createdByDevice`, under
a key derived from the backbone's Ed25519 seed. The result is still a 20-character Enmeshed
id of the ordinary alphabet.

Why in the id and not as a signature field beside it: the Enmeshed runtime does not sign the
text it received, it rebuilds `{"id","expiresAt","createdBy"?,"createdByDevice"?,"type"}`
and signs that (nmshd/runtime `transport/src/modules/challenges/ChallengeController.ts`),
dropping any field it does not know. `id` and `expiresAt` survive that; so the check below
works both for the runtime's string and for a client that signs the DTO JSON it was given.

A 64-bit tag cannot be forged offline (the key never leaves the backbone), and guessing it
online takes ~2^63 requests. Unlike the tag, single use needs state: the workers' challenge
gate (streams/app.py, `identity_agent`) lets each challenge id through once, whichever key
signed it (issue 19).

Error codes are Enmeshed's where it has one (nmshd/backbone
`Modules/Devices/src/Devices.Application/ApplicationErrors.cs`), all HTTP 400:

- `error.platform.validation.device.invalidChallenge` — not a challenge this backbone issued
  (forged or altered id, expiry or creator; unparseable JSON). Upstream answers an unknown id
  with 404 `error.platform.recordNotFound`;
- `error.platform.validation.device.challengeHasExpired` — authentic but past `expiresAt`
  (strict: upstream tolerates an hour past it);
- `error.platform.validation.device.invalidSignature` — the client's signature does not verify.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.signing import SigningKey

from backbone.security.ids import ALPHABET, RANDOM_LENGTH, is_valid_id
from schemas.signatures import verify

PREFIX: str = "CHL"
NONCE_CHARS: int = 6
TAG_CHARS: int = RANDOM_LENGTH - NONCE_CHARS  # 11 base62 chars hold 64 bits (62**11 > 2**64)
TAG_BYTES: int = 8

CHALLENGE_INVALID: str = "error.platform.validation.device.invalidChallenge"
CHALLENGE_EXPIRED: str = "error.platform.validation.device.challengeHasExpired"
SIGNATURE_INVALID: str = "error.platform.validation.device.invalidSignature"

_MESSAGES = {
    CHALLENGE_INVALID: "The given challenge was not issued by this backbone or was altered.",
    CHALLENGE_EXPIRED: "The given challenge has expired. Obtain a new challenge and try again.",
    SIGNATURE_INVALID: "The given signature is not valid.",
}

ChallengeType = Literal["Identity", "Device", "Relationship"]


class ChallengeError(Exception):
    """A rejected challenge; `code` is the machine-readable Enmeshed-style error code."""

    status: int = 400

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or _MESSAGES.get(code, code)
        super().__init__(f"{code}: {self.message}")


def utc(now: datetime | None) -> datetime:
    """`now` as an aware UTC datetime (the current time for None); naive times are refused,
    since guessing their zone would silently shift every expiry."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return now.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """ISO 8601 with milliseconds and `Z`, the form the Enmeshed runtime (luxon) writes back,
    so the string a client signs is the same whether or not it re-serializes the date."""
    moment = utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Challenge:
    id: str
    expires_at: datetime
    created_by: str | None = None
    created_by_device: str | None = None

    def to_dto(self) -> dict[str, str | None]:
        """The `result` of `POST /Challenges` (Enmeshed `ChallengeDTO`)."""
        return {
            "id": self.id,
            "expiresAt": format_utc(self.expires_at),
            "createdBy": self.created_by,
            "createdByDevice": self.created_by_device,
        }

    def canonical_json(self, challenge_type: ChallengeType = "Identity") -> str:
        """The exact string the Enmeshed runtime signs for this challenge.

        Field order and omissions follow its `Challenge` class: absent creators are left out,
        `type` comes last, no whitespace.
        """
        obj: dict[str, str] = {"id": self.id, "expiresAt": format_utc(self.expires_at)}
        if self.created_by is not None:
            obj["createdBy"] = self.created_by
        if self.created_by_device is not None:
            obj["createdByDevice"] = self.created_by_device
        obj["type"] = challenge_type
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


class ChallengeIssuer:
    """Issues challenges and later recognises its own, statelessly.

    Every API replica configured with the same signing key accepts the others' challenges.
    """

    def __init__(self, signing_key: SigningKey, ttl_seconds: int = 600) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = ttl_seconds
        # A separate MAC key, derived one-way from the seed: the tag never exposes the seed,
        # and the same seed can sign other things without any cross-protocol confusion.
        self._mac_key: bytes = blake2b(
            b"backbone/challenge-id-tag/v1",
            key=bytes(signing_key),
            digest_size=32,
            encoder=RawEncoder,
        )

    def __repr__(self) -> str:
        return f"ChallengeIssuer(ttl_seconds={self.ttl_seconds}, key=<redacted>)"

    __str__ = __repr__

    def _tag(
        self, nonce: str, expires_epoch: int, created_by: str | None, device: str | None
    ) -> str:
        # JSON of a list: unambiguous field boundaries, and None stays distinct from "".
        message = json.dumps([nonce, expires_epoch, created_by, device]).encode()
        mac = blake2b(message, key=self._mac_key, digest_size=TAG_BYTES, encoder=RawEncoder)
        return _base62(int.from_bytes(mac, "big"), TAG_CHARS)

    def issue(
        self,
        now: datetime | None = None,
        *,
        created_by: str | None = None,
        created_by_device: str | None = None,
    ) -> Challenge:
        """A new challenge, valid for `ttl_seconds` from `now` (to the whole second)."""
        expires_at = utc(now).replace(microsecond=0) + timedelta(seconds=self.ttl_seconds)
        nonce = "".join(secrets.choice(ALPHABET) for _ in range(NONCE_CHARS))
        tag = self._tag(nonce, int(expires_at.timestamp()), created_by, created_by_device)
        return Challenge(PREFIX + nonce + tag, expires_at, created_by, created_by_device)

    def verify_backbone_signature(
        self, challenge_json: str, now: datetime | None = None
    ) -> Challenge:
        """The challenge in `challenge_json` if this backbone issued it and it has not expired.

        Raises `ChallengeError` with `CHALLENGE_INVALID` or `CHALLENGE_EXPIRED`. The returned
        expiry is the authenticated one, not whatever sub-second detail the JSON carried.
        """
        challenge = self._authenticate(challenge_json)
        _check_expiry(challenge, now)
        return challenge

    def verify_signed_challenge(
        self,
        challenge_json: str,
        signature: bytes,
        public_key: bytes,
        now: datetime | None = None,
    ) -> Challenge:
        """Check a `signedChallenge`: issued by us, signed by `public_key`, not expired.

        `signature` and `public_key` are raw bytes (see `signatures.parse_signature` and
        `parse_public_key`); the signed message is the UTF-8 of `challenge_json`, exactly as
        received. Checked in that order (signature before expiry, as upstream), so a forged
        challenge never reports "expired".
        """
        challenge = self._authenticate(challenge_json)
        if not verify(public_key, challenge_json.encode("utf-8"), signature):
            raise ChallengeError(SIGNATURE_INVALID)
        _check_expiry(challenge, now)
        return challenge

    def _authenticate(self, challenge_json: str) -> Challenge:
        fields = _parse_challenge_json(challenge_json)
        challenge_id = fields.get("id")
        expires_raw = fields.get("expiresat")
        created_by = fields.get("createdby")
        device = fields.get("createdbydevice")
        if not (
            isinstance(challenge_id, str)
            and is_valid_id(challenge_id, PREFIX)
            and isinstance(expires_raw, str)
            and (created_by is None or isinstance(created_by, str))
            and (device is None or isinstance(device, str))
        ):
            raise ChallengeError(CHALLENGE_INVALID)
        try:
            # Any offset is fine (the runtime may write local time); the instant is what counts.
            expires_at = utc(datetime.fromisoformat(expires_raw)).replace(microsecond=0)
        except (ValueError, OverflowError) as exc:
            raise ChallengeError(CHALLENGE_INVALID) from exc
        nonce = challenge_id[len(PREFIX) : len(PREFIX) + NONCE_CHARS]
        expected = self._tag(nonce, int(expires_at.timestamp()), created_by, device)
        if not hmac.compare_digest(expected, challenge_id[len(PREFIX) + NONCE_CHARS :]):
            raise ChallengeError(CHALLENGE_INVALID)
        return Challenge(challenge_id, expires_at, created_by, device)


def claimed_type(challenge_json: str) -> str | None:
    """The `type` the signed text claims (`Identity`, `Device`, `Relationship`), None when it
    has none (a client that signed the DTO). Read only after `_authenticate` accepted the
    text; the tag does not cover it, but the client's signature over the text does, so a
    challenge signed for one purpose cannot be presented for another."""
    value = _parse_challenge_json(challenge_json).get("type")
    if value is not None and not isinstance(value, str):
        raise ChallengeError(CHALLENGE_INVALID)
    return value


def _check_expiry(challenge: Challenge, now: datetime | None) -> None:
    if utc(now) >= challenge.expires_at:
        raise ChallengeError(CHALLENGE_EXPIRED)


def _parse_challenge_json(challenge_json: str) -> dict[str, Any]:
    """The challenge's fields, keys lowercased: the Enmeshed Backbone reads them
    case-insensitively, and a client may send `ID` as well as `id`."""
    if not isinstance(challenge_json, str) or len(challenge_json) > 4096:
        raise ChallengeError(CHALLENGE_INVALID)

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key.lower() in result:  # two spellings of one field: refuse to pick one
                raise ValueError(f"duplicate field {key!r}")
            result[key.lower()] = value
        return result

    try:
        obj = json.loads(challenge_json, object_pairs_hook=pairs_hook)
    # JSONDecodeError is a ValueError, as is a duplicate field; a few hundred nested `[`
    # exhaust the parser's recursion (a 500 before, issue 19).
    except (ValueError, RecursionError) as exc:
        raise ChallengeError(CHALLENGE_INVALID) from exc
    if not isinstance(obj, dict):
        raise ChallengeError(CHALLENGE_INVALID)
    return obj
