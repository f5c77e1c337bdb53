"""The persistence layer: reaching Kafka and Cassandra, shared by the API, the workers and
the operators' tools.

Topic names and provisioning (`topics`), the envelope that seals every event before it
reaches the log (`envelopes`), Cassandra sessions and statements from asyncio
(`cassandra`), and the retry loop used around both (`retrying`). It imports only
`schemas/` and `backbone.settings`: the API and the workers import it, never each other.
"""
