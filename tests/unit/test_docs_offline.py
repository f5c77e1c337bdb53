"""The OpenAPI docs of the backbone and of the Connector load without internet: Swagger
UI's and ReDoc's files are served by the process itself, and `/` leads to the docs
(issue 20: `/docs` was blank on a machine without internet, `/` a 404)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app as backbone_app
from backbone.settings import BackboneSettings
from connector.api import create_app as connector_app


def _backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv("BACKBONE_STATE_DIR", str(tmp_path))  # its secrets go here
    return backbone_app(BackboneSettings.from_env())


@pytest.mark.parametrize("which", ["backbone", "connector"])
def test_docs_need_no_cdn_and_the_root_leads_to_them(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _backbone(tmp_path, monkeypatch) if which == "backbone" else connector_app(None, "k" * 32)  # type: ignore[arg-type]
    client = TestClient(app)  # no lifespan: no Kafka or Cassandra needed for the docs
    root = client.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/docs"
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page).text
        assert f"/static-offline-docs/{asset}" in html
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html
        served = client.get(f"/static-offline-docs/{asset}")
        assert served.status_code == 200 and len(served.content) > 100_000
    assert client.get("/static-offline-docs/swagger-ui.css").status_code == 200
