"""The pure rules of the backbone: no Kafka, no Cassandra, no clock of their own.

Each aggregate's decider (`*_decider.py`: given its state, a command and the time, the
events to append or a `decision.Rejection`; and how an event evolves the state), the
choreography between aggregates (`relationship_choreography`), who learns of an event
(`mailbox_router`) and how a decider's state forgets a deleted identity
(`deletion_forget`). The workers (`streams/`) run them; the API reads their constants and
shapes; nothing here imports either.
"""
