"""The tamper-evident log: per-partition Merkle trees in the style of Certificate
Transparency (RFC 6962/9162) over the raw bytes of the log's records, signed checkpoints
(tree heads) an auditor process publishes, and the operator's verify and prove tools.

    merkle.py       tree hashing, inclusion and consistency proofs, their verification
    leaves.py       what a leaf is: a record's key and value bytes, length-prefixed
    checkpoints.py  Ed25519-signed tree heads (topic, partition, size, root, time)
    store.py        the auditor's Cassandra tables: state, leaf hashes, checkpoints
    auditor.py      `backbone auditor`: follows the source topics, signs checkpoints
    verify.py       `backbone audit verify`: recompute from the log, name what changed
    prove.py        `backbone audit prove`: proof bundles anyone can check offline
    logread.py      reading partitions as raw records with offsets (no consumer group)
    settings.py     the auditor's key, keyspace, topics and interval (BACKBONE_AUDIT_*)
    cli.py          `backbone auditor`, `backbone audit verify|prove|check|checkpoints`
"""
