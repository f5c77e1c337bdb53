"""The Connector's settings, from environment variables (the README lists them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "connector"


@dataclass(frozen=True)
class ConnectorSettings:
    data_dir: Path
    backbone_url: str
    client_id: str
    client_secret: str
    api_key: str = ""
    host: str = "127.0.0.1"
    port: int = 8090
    webhooks: str = ""  # JSON list of targets (connector/webhooks.py)
    identity: str = ""  # which identity `serve` acts for; empty: the first one

    @classmethod
    def from_env(cls) -> ConnectorSettings:
        return cls(
            data_dir=Path(os.environ.get("CONNECTOR_DATA_DIR", "") or _default_data_dir()),
            backbone_url=os.environ.get("CONNECTOR_BACKBONE_URL", "http://127.0.0.1:8080"),
            client_id=os.environ.get("CONNECTOR_CLIENT_ID", "local"),
            client_secret=os.environ.get("CONNECTOR_CLIENT_SECRET", ""),
            api_key=os.environ.get("CONNECTOR_API_KEY", ""),
            host=os.environ.get("CONNECTOR_HOST", "127.0.0.1"),
            port=int(os.environ.get("CONNECTOR_PORT", "8090")),
            webhooks=os.environ.get("CONNECTOR_WEBHOOKS", ""),
            identity=os.environ.get("CONNECTOR_IDENTITY", ""),
        )

    @property
    def database(self) -> Path:
        return self.data_dir / "connector.sqlite"

    def __repr__(self) -> str:
        return (
            f"ConnectorSettings(data_dir={str(self.data_dir)!r}, "
            f"backbone_url={self.backbone_url!r}, client_id={self.client_id!r}, "
            f"port={self.port}, client_secret=<redacted>, api_key=<redacted>)"
        )
