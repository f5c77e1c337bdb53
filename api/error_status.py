"""Which HTTP status answers a command's outcome: chosen here, at the edge.

The workers answer "accepted", or "refused" with an error code and a message
(domain/decision.py); the transport's vocabulary stays out of the rules. This is the one
catalogue that turns a refusal's code into a status, and an accepted command's name into
its success status. tests/unit/test_error_status.py walks the deciders and the decide loop
for every code they can refuse with and fails if one is missing here.
"""

from __future__ import annotations

import logging

from domain.decision import FORBIDDEN, INVALID_PROPERTY_VALUE, NOT_FOUND, UNKNOWN_COMMAND

log = logging.getLogger("backbone.api")

UNEXPECTED = "error.platform.unexpected"

# Every refusal a worker can answer, by code. Enmeshed answers its validation rules with
# 400, a resource that is not there (or not the caller's) with 404, a caller that may not
# act with 403.
REFUSAL_STATUS: dict[str, int] = {
    NOT_FOUND: 404,
    FORBIDDEN: 403,
    "error.platform.quotaExhausted.devices": 400,
    UNKNOWN_COMMAND: 400,
    INVALID_PROPERTY_VALUE: 400,
    "error.platform.validation.idempotencyKeyReused": 422,
    "error.platform.validation.datawallet.cannotDowngrade": 400,
    "error.platform.validation.datawallet."
    "cannotPushDatawalletModificationsDuringActiveSyncRun": 400,
    "error.platform.validation.datawallet.datawalletNotUpToDate": 400,
    "error.platform.validation.datawallet.insufficientSupportedDatawalletVersion": 400,
    "error.platform.validation.device.challengeAlreadyUsed": 400,
    "error.platform.validation.device.challengeHasExpired": 400,
    "error.platform.validation.device.deviceCannotDeleteItself": 400,
    "error.platform.validation.device.onlyOneActiveDeletionProcessAllowed": 400,
    "error.platform.validation.file.alreadyExists": 400,
    "error.platform.validation.identity.addressAlreadyExists": 400,
    "error.platform.validation.identity.addressWasDeleted": 400,
    "error.platform.validation.identity.isBeingDeleted": 400,
    "error.platform.validation.identityDeletionProcess.invalidGracePeriod": 400,
    "error.platform.validation.identityDeletionProcess.notCancellable": 400,
    "error.platform.validation.message.alreadyExists": 400,
    "error.platform.validation.relationship.actionNotAllowedForThisParty": 400,
    "error.platform.validation.relationship.cannotRequestReactivationWhenThereIsAnOpenRequest": 400,
    "error.platform.validation.relationship.noOpenReactivationRequest": 400,
    "error.platform.validation.relationship.relationshipAlreadyDecomposed": 400,
    "error.platform.validation.relationship.relationshipIsNotInCorrectStatus": 400,
    "error.platform.validation.relationshipRequest.cannotSendRelationshipRequestToYourself": 400,
    "error.platform.validation.relationshipRequest.relationshipToTargetAlreadyExists": 400,
    "error.platform.validation.relationshipTemplate.alreadyExists": 400,
    "error.platform.validation.relationshipTemplate.expired": 400,
    "error.platform.validation.relationshipTemplate.maxNumberOfAllocationsExhausted": 400,
    "error.platform.validation.syncRun.cannotFinalizeSyncRunStartedByAnotherDevice": 400,
    "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning": 400,
    "error.platform.validation.syncRun.externalEventNotInSyncRun": 400,
    "error.platform.validation.syncRun.syncRunAlreadyFinalizedOrExpired": 400,
    "error.platform.validation.token.alreadyExists": 400,
    # The decide loop's own: a rule that raised, a data key that did not arrive in time.
    UNEXPECTED: 500,
    "error.platform.serviceUnavailable": 503,
}

# The commands whose acceptance creates a resource. A relationship request is accepted by
# the pair's OpenRelationship, the step the template's allocation forwards it to.
CREATING = frozenset(
    {
        "CreateIdentity",
        "AddDevice",
        "CreateTemplate",
        "CreateToken",
        "UploadFile",
        "SendMessage",
        "RequestRelationship",
        "OpenRelationship",
    }
)
# Accepted commands whose answer carries the changed resource.
ANSWERED_WITH_BODY = frozenset({"ChangeRelationship"})


def refusal_status(code: str) -> int:
    """The status of a refusal. A code missing from the catalogue is a bug of ours, not of
    the request: 500, and logged, rather than a guess that tells the client to change it."""
    status = REFUSAL_STATUS.get(code)
    if status is None:
        log.error("a refusal's code has no status in the catalogue", extra={"code": code})
        return 500
    return status


def success_status(command: str) -> int:
    """The status of an accepted command."""
    if command in CREATING:
        return 201
    return 200 if command in ANSWERED_WITH_BODY else 204
