"""The wire forms of keys and signatures live in `schemas.signatures`, the contract the
backbone and its clients share; this name stays for the API routers still importing it."""

from schemas.signatures import parse_public_key, serialize_public_key

__all__ = ["parse_public_key", "serialize_public_key"]
