"""The HTTP status of a command's outcome is the API's choice (api/error_status.py): every
code a worker can refuse with has one, and clients see the statuses they saw when the
workers chose them."""

from __future__ import annotations

import ast
import importlib
import logging
from pathlib import Path

import pytest

from api.bus import Outcome, answer
from api.error_status import REFUSAL_STATUS, refusal_status, success_status
from api.errors import ApiError
from api.schemas import ERROR_DESCRIPTIONS
from backbone import idempotency
from domain import relationship_decider, token_decider

ROOT = Path(__file__).resolve().parents[2]
# Where refusals are made: the rules, and the loop that runs them.
REFUSING = ["domain", "streams"]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _code(node: ast.expr, path: Path) -> str:
    """The code a `Rejection(code, ...)` names: a literal, or a constant of its module."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name | ast.Attribute):
        module = vars(importlib.import_module(_module(path)))
        value = eval(ast.unparse(node), module)  # noqa: S307 (a name or attribute of our own code)
        if isinstance(value, str):
            return value
    raise AssertionError(f"{path}:{node.lineno}: a refusal's code must be a constant string")


def refusal_codes() -> dict[str, list[str]]:
    """Every code a `Rejection` is built with under domain/ and streams/, with where."""
    found: dict[str, list[str]] = {}
    for folder in REFUSING:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "Rejection"
                ):
                    code = _code(node.args[0] if node.args else node.keywords[0].value, path)
                    found.setdefault(code, []).append(f"{path.name}:{node.lineno}")
    return found


def test_every_code_a_worker_refuses_with_has_a_status() -> None:
    codes = refusal_codes()
    assert len(codes) > 30  # the walk found the deciders
    missing = {code: where for code, where in codes.items() if code not in REFUSAL_STATUS}
    assert missing == {}


def test_the_catalogue_holds_no_code_nothing_refuses_with() -> None:
    assert set(REFUSAL_STATUS) - set(refusal_codes()) == set()


def test_refusals_keep_the_statuses_clients_know() -> None:
    assert refusal_status(token_decider.NOT_FOUND) == 404
    assert refusal_status("error.platform.forbidden") == 403
    assert refusal_status(relationship_decider.WRONG_STATUS) == 400
    assert refusal_status(idempotency.KEY_REUSED) == 422
    assert refusal_status("error.platform.unexpected") == 500
    assert refusal_status("error.platform.serviceUnavailable") == 503
    validation = [c for c in REFUSAL_STATUS if c.startswith("error.platform.validation.")]
    assert {refusal_status(c) for c in validation if c != idempotency.KEY_REUSED} == {400}


def test_an_unknown_code_is_our_bug_a_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="backbone.api"):
        assert refusal_status("error.platform.validation.madeUp") == 500
    assert "catalogue" in caplog.text


@pytest.mark.parametrize(
    ("command", "status"),
    [
        ("CreateIdentity", 201),
        ("AddDevice", 201),
        ("CreateTemplate", 201),
        ("CreateToken", 201),
        ("UploadFile", 201),
        ("SendMessage", 201),
        ("RequestRelationship", 201),
        ("ChangeRelationship", 200),
        ("DeleteToken", 204),
        ("DeleteTemplate", 204),
        ("CollectTemplate", 204),
        ("MarkMessageReceived", 204),
        ("DeleteDevice", 204),
        ("StartIdentityDeletion", 204),
        ("AcknowledgeMailbox", 204),
    ],
)
def test_an_accepted_command_is_answered_as_the_workers_did(command: str, status: int) -> None:
    assert success_status(command) == status


def _reply(ok: bool, status: int, code: str | None = None) -> dict[str, object]:
    return {
        "correlation_id": "c1",
        "ok": ok,
        "status": status,
        "error_code": code,
        "error_message": "why" if code else None,
        "resource_json": None,
    }


@pytest.mark.parametrize("written", [0, 404])  # a reply of today, one a worker wrote before
def test_a_refused_reply_raises_the_catalogues_status(written: int) -> None:
    with pytest.raises(ApiError) as refused:
        answer(_reply(False, written, token_decider.NOT_FOUND), 204)
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        404,
        token_decider.NOT_FOUND,
        "why",
    )


@pytest.mark.parametrize("written", [0, 201])
def test_an_accepted_reply_takes_the_status_the_api_chose(written: int) -> None:
    assert answer(_reply(True, written), 201) == Outcome(201, None)


def test_every_refusal_status_but_our_own_bugs_can_be_documented_on_a_route() -> None:
    # A route declares a decider's refusals by status (api/schemas.py `refuses`), which the
    # OpenAPI document describes; a 500 is a bug of ours, documented nowhere.
    statuses = {s for s in REFUSAL_STATUS.values() if s != 500}
    assert {str(s) for s in statuses} <= set(ERROR_DESCRIPTIONS)
