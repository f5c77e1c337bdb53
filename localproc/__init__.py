"""Processes on this machine, shared by the launcher (`deploy/`), the Connector's CLI, the
benchmarks and the integration tests: a child process with a log of its own (optionally found
again by a pid file), and free loopback ports. No server code: the Connector imports it."""
