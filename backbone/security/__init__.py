"""The backbone's own cryptography and credential handling, all on PyNaCl and the stdlib.

- `ids`: Enmeshed-style ids (`DVC…`, `USR…`, `CHL…`).
- `addresses`: identity addresses `did:e:<domain>:dids:<hash><checksum>`.
- `signatures`: Ed25519 verification and the `@nmshd/crypto` wire forms of keys and signatures.
- `challenges`: stateless backbone-issued challenges.
- `tokens`: short-lived bearer tokens.
- `passwords`: Argon2id device password hashes.
- `logcrypto`: at-rest encryption of event bodies on Kafka.

The Enmeshed shapes these follow are written down, with sources, in
`docs/enmeshed-identity-api.md`. Modules are imported directly (no re-exports here) so that
importing one does not pull in the others.
"""
