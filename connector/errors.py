"""What the Connector refuses itself (the backbone's refusals are `BackboneError`).

Each refusal has a machine-readable code and a kind; the REST API (`connector.api`) chooses
the HTTP status from the kind, so the handlers know nothing of HTTP.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """The request cannot be done as asked (the caller's to fix)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(ConnectorError):
    """No such record here (or not one of ours)."""


class Damaged(ConnectorError):
    """What the backbone handed over fails its check or does not open: not the caller's
    fault, and not the Connector's."""


class Unavailable(ConnectorError):
    """A part the request needs is not running."""


class Unauthorized(ConnectorError):
    """The caller did not prove it may use this Connector."""
