"""Rebuilding the read models from the log (`backbone replay`), and checking the result
against the live keyspace (`backbone replay verify`).

    rebuild.py  replay events and mailbox entries into a fresh keyspace with the workers'
                own projection and sequencer code; resumable, parallel by partition
    compare.py  table by table: row counts and content digests, naming the rows that differ
    cli.py      the commands
"""
