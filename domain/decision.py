"""What every decider returns: events to append, or a rejection with an error code.

A rejection says which rule refused the command (`code`, from the Enmeshed catalogue) and
why (`message`); which HTTP status answers it is the API's choice (api/error_status.py),
so the rules know nothing of the transport that carried the command.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import errors

# The codes every aggregate refuses with; each rule module names its own beside them.
NOT_FOUND = errors.NOT_FOUND
FORBIDDEN = "error.platform.forbidden"
INVALID_PROPERTY_VALUE = errors.INVALID_PROPERTY_VALUE
UNKNOWN_COMMAND = "error.platform.validation.unknownCommand"


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str


def unknown_command(command: object) -> Rejection:
    """A command of another aggregate type, sent to the wrong topic."""
    return Rejection(UNKNOWN_COMMAND, f"unknown command {type(command).__name__}")
