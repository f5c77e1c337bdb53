"""The error envelope of the REST APIs, the backbone's and the Connector's alike:
`{"error": {"id", "code", "message", "docs", "time", ...}}`, the Enmeshed Backbone's shape.

Part of the contract, so that the Connector builds its errors without importing the server.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

NOT_FOUND = "error.platform.recordNotFound"
METHOD_NOT_ALLOWED = "error.platform.methodNotAllowed"
INVALID_PROPERTY_VALUE = "error.platform.validation.invalidPropertyValue"
INVALID_CONTENT_TYPE = "error.platform.validation.invalidContentType"


def error_body(
    code: str, message: str, extra: dict[str, object] | None = None
) -> dict[str, object]:
    return {
        "error": {
            "id": str(uuid.uuid4()),
            "code": code,
            "message": message,
            "docs": "",
            "time": datetime.now(UTC).isoformat(),
            **(extra or {}),
        }
    }


def http_error_code(status: int) -> str:
    """The code of an error the web framework raises itself (an unknown path, a wrong method)."""
    return {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(status, "error.platform.http")
