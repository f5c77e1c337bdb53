"""Identity addresses, derived from an identity's Ed25519 public key exactly as Enmeshed does.

Algorithm (nmshd/backbone `DevelopmentKit.Identity/ValueObjects/IdentityAddress.cs`, and the
client-side twin nmshd/runtime `transport/src/modules/accounts/IdentityUtil.ts`):

1. `h = SHA-256(SHA-512(public_key))[:10]` — `public_key` is the raw 32-byte key, not its
   JSON wire form;
2. `main = "did:e:" + domain + ":dids:" + hex(h)` — 20 lowercase hex characters;
3. `checksum = hex(SHA-256(main))[:2]` — one byte;
4. `address = main + checksum`, all lowercase.

A client computes its address locally from its own key and must arrive at the same string,
so none of this may be "improved" here.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH: int = 80
HASH_BYTES: int = 10
CHECKSUM_HEX_CHARS: int = 2

_DOMAIN = re.compile(r"(?:[a-z0-9-]+\.)*[a-z]{2,}")
_ADDRESS = re.compile(
    r"(?P<main>did:e:(?P<domain>(?:[a-z0-9-]+\.)*[a-z]{2,}):dids:[0-9a-f]{20})"
    r"(?P<checksum>[0-9a-f]{2})"
)


def _checksum(main: str) -> str:
    return hashlib.sha256(main.encode("ascii")).hexdigest()[:CHECKSUM_HEX_CHARS]


def address_from_public_key(public_key: bytes, domain: str) -> str:
    """The address of the identity whose raw Ed25519 public key is `public_key`.

    `domain` is the backbone's DID domain name (Enmeshed's `DidDomainName`; clients use the
    backbone URL's host name), e.g. `localhost` or `backbone.example.org`.
    """
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
    # Upstream lowercases the whole address; we insist on a lowercase domain instead, so that
    # the checksum is computed over exactly the text that ends up in the address.
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"{domain!r} is not a lowercase DNS name usable in an address")
    hashed = hashlib.sha256(hashlib.sha512(public_key).digest()).digest()[:HASH_BYTES]
    main = f"did:e:{domain}:dids:{hashed.hex()}"
    address = main + _checksum(main)
    if len(address) > MAX_LENGTH:
        raise ValueError(f"the domain makes the address longer than {MAX_LENGTH} characters")
    return address


def is_valid_address(address: str) -> bool:
    """True when `address` is well-formed and its checksum matches.

    This says nothing about whether the identity exists, nor which key it belongs to: for the
    latter compare with `address_from_public_key`.
    """
    if not isinstance(address, str) or len(address) > MAX_LENGTH:
        return False
    match = _ADDRESS.fullmatch(address)
    return match is not None and match["checksum"] == _checksum(match["main"])


def address_domain(address: str) -> str:
    """The DID domain of a valid address (raises ValueError for an invalid one)."""
    match = _ADDRESS.fullmatch(address) if is_valid_address(address) else None
    if match is None:
        raise ValueError(f"{address!r} is not a valid identity address")
    return match["domain"]
