"""What the Connector refuses itself (the backbone's refusals are `BackboneError`)."""

from __future__ import annotations


class ConnectorError(Exception):
    """Refused by the Connector itself (not the backbone): `status`, machine-readable `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str, message: str) -> ConnectorError:
    return ConnectorError(404, f"error.connector.{what}NotFound", message)
