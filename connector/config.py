"""The Connector's settings, from environment variables (the README lists them).

Every setting is checked where it is read, and a wrong one is refused with a message that
names the variable and says what it should hold: a newcomer should never have to read a
traceback or a backbone validation error to find a typo in their environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(Exception):
    """A missing or wrong setting; the message names the variable."""


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "connector"


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a port number (1-65535), not {raw!r}") from None
    if not 0 < port < 65536:
        raise SettingsError(f"{name} must be a port number (1-65535), not {port}")
    return port


def _url(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http(s) URL such as {default}, not {raw!r}")
    return raw.rstrip("/")


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
            backbone_url=_url("CONNECTOR_BACKBONE_URL", "http://127.0.0.1:8080"),
            client_id=os.environ.get("CONNECTOR_CLIENT_ID", "").strip() or "local",
            client_secret=os.environ.get("CONNECTOR_CLIENT_SECRET", "").strip(),
            api_key=os.environ.get("CONNECTOR_API_KEY", ""),
            host=os.environ.get("CONNECTOR_HOST", "").strip() or "127.0.0.1",
            port=_port("CONNECTOR_PORT", 8090),
            webhooks=os.environ.get("CONNECTOR_WEBHOOKS", ""),
            identity=os.environ.get("CONNECTOR_IDENTITY", "").strip(),
        )

    def require_client_secret(self) -> None:
        """Talking to the backbone needs the OAuth client's secret: name it when it is
        missing, instead of letting the backbone answer with a validation error."""
        if not self.client_secret:
            raise SettingsError(
                "CONNECTOR_CLIENT_SECRET is not set: the backbone's OAuth client secret "
                f"(client id {self.client_id!r}). For a backbone started with `make up` it is "
                "in $BACKBONE_STATE_DIR/secrets/client.secret "
                "(by default ~/.local/state/backbone/secrets/client.secret)"
            )

    @property
    def database(self) -> Path:
        return self.data_dir / "connector.sqlite"

    @property
    def log_file(self) -> Path:
        """Where `connector start` writes the log of the process it starts."""
        return self.data_dir / "connector.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "connector.pid"

    def __repr__(self) -> str:
        return (
            f"ConnectorSettings(data_dir={str(self.data_dir)!r}, "
            f"backbone_url={self.backbone_url!r}, client_id={self.client_id!r}, "
            f"port={self.port}, client_secret=<redacted>, api_key=<redacted>)"
        )
