"""The Connector's REST API answers every refusal in the backbone's error envelope, with
the HTTP status chosen at the edge from the kind of refusal."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from connector.api import create_app
from connector.errors import Damaged, NotFound
from connector.service import ConnectorService

KEY = {"X-API-KEY": "the key"}
TEMPLATE = "/api/v2/RelationshipTemplates/RLTaaaaaaaaaaaaaaaaa"


class _Templates:
    def get(self, template_id: str) -> Any:
        raise NotFound("error.connector.templateNotFound", f"unknown template {template_id}")

    def all(self) -> Any:
        raise Damaged("error.connector.fileDamaged", "does not match its hash")


@pytest.fixture
def client() -> TestClient:
    service = cast(ConnectorService, SimpleNamespace(templates=_Templates()))
    return TestClient(create_app(service, "the key"))


def _error(answer: Any) -> tuple[int, str]:
    error = answer.json()["error"]
    assert set(error) >= {"id", "code", "message", "docs", "time"}
    return answer.status_code, error["code"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", TEMPLATE, {}, (401, "error.connector.unauthorized")),
        ("GET", TEMPLATE, KEY, (404, "error.connector.templateNotFound")),
        ("GET", "/api/v2/RelationshipTemplates", KEY, (502, "error.connector.fileDamaged")),
        ("GET", "/nowhere", KEY, (404, "error.platform.recordNotFound")),
        ("DELETE", "/Monitoring/Version", KEY, (405, "error.platform.methodNotAllowed")),
    ],
)
def test_refusals_have_their_status_and_code(
    client: TestClient, method: str, path: str, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    assert _error(client.request(method, path, headers=headers)) == expected


def test_a_json_body_sent_as_text_is_named_as_such(client: TestClient) -> None:
    answer = client.post(
        "/api/v2/Tokens/Own",
        content='{"content": 1}',
        headers={**KEY, "Content-Type": "text/plain"},
    )
    assert _error(answer) == (400, "error.platform.validation.invalidContentType")
