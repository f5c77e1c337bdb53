"""Enmeshed-style ids: a 3-letter type prefix and 17 characters from `[A-Za-z0-9]`.

Enmeshed's strongly typed ids (`DVC…` devices, `USR…` usernames, `CHL…` challenges, …) are
20 characters long; the 17 characters after the prefix are drawn from the 62 ASCII letters
and digits. Upstream draws them with a non-cryptographic PRNG; we use `secrets`, since some
of them (usernames) are half of a credential and all of them should be unguessable.
17 chars of base62 give ~101 bits, so collisions are negligible.
"""

from __future__ import annotations

import re
import secrets
import string

ALPHABET: str = string.ascii_uppercase + string.ascii_lowercase + string.digits
PREFIX_LENGTH: int = 3
ID_LENGTH: int = 20
RANDOM_LENGTH: int = ID_LENGTH - PREFIX_LENGTH

_PREFIX = re.compile(r"[A-Z]{3}")
_ALPHABET_SET = frozenset(ALPHABET)


def _check_prefix(prefix: str) -> None:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"an id prefix is three capital letters, not {prefix!r}")


def new_id(prefix: str) -> str:
    """A fresh random id such as `DVCa8Kf0…` (20 characters)."""
    _check_prefix(prefix)
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))


def is_valid_id(value: str, prefix: str) -> bool:
    """True when `value` is exactly an id of this type.

    Stricter than upstream's `IsValid` (which accepts ≤ 20 chars) and equal to its `Parse`,
    which is what the API applies to ids it is handed.
    """
    _check_prefix(prefix)
    return (
        isinstance(value, str)
        and len(value) == ID_LENGTH
        and value.startswith(prefix)
        and all(c in _ALPHABET_SET for c in value[PREFIX_LENGTH:])
    )
