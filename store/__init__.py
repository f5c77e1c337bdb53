"""The persistence layer: reaching Kafka and Cassandra, shared by the API, the workers and
the operators' tools.

Topic names and provisioning (`topics`), the envelope that seals every event before it
reaches the log (`envelopes`), Cassandra sessions and statements from asyncio
(`cassandra`), the retry loop used around both (`retrying`), and the read models' queries
(`readmodels`), through which the API reads Cassandra. It imports only
`schemas/` and `backbone.settings`: the API and the workers import it, never each other.
"""
