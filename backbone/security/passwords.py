"""Device password hashes: Argon2id with libsodium's INTERACTIVE limits.

Cost: opslimit 2 passes over memlimit 64 MiB (`OPSLIMIT_INTERACTIVE`, `MEMLIMIT_INTERACTIVE`),
roughly 50-100 ms and 64 MiB of RAM per hash or check on a current server core. That bounds
a guessing attacker holding the hashes, while a login (`/connect/token`) stays cheap enough;
keep the API's concurrent logins bounded, since each one holds 64 MiB while it runs.

Stored form is libsodium's self-describing string (`$argon2id$v=19$m=65536,t=2,p=1$…`), so
the limits can be raised later and old hashes still verify.
"""

from __future__ import annotations

from nacl import pwhash
from nacl.exceptions import CryptoError, InvalidkeyError

OPSLIMIT: int = pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT: int = pwhash.argon2id.MEMLIMIT_INTERACTIVE


def hash_password(password: str) -> str:
    """A salted Argon2id hash of `password`, to store instead of it."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    return pwhash.argon2id.str(
        password.encode("utf-8"), opslimit=OPSLIMIT, memlimit=MEMLIMIT
    ).decode("ascii")


def verify_password(stored: str, password: str) -> bool:
    """True iff `password` matches `stored`; False for a wrong password or a damaged hash.

    Never raises on bad input: the login path should not branch on why it failed.
    """
    try:
        return pwhash.verify(stored.encode("ascii"), password.encode("utf-8"))
    except InvalidkeyError:  # the wrong password
        return False
    except (CryptoError, ValueError, TypeError, AttributeError):
        # Not a hash libsodium knows, unencodable text, or not strings at all (a None from a
        # missing row): the answer is still just "no".
        return False
