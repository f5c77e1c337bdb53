"""What the launcher needs to know about one local service."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from string import Template

from backbone.settings import InfraSettings
from localproc.process import ManagedProcess

CONF_DIR = Path(__file__).parent / "conf"


def render(template_name: str, target: Path, **values: object) -> Path:
    text = Template((CONF_DIR / template_name).read_text()).substitute(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


class Service(ABC):
    name: str
    start_timeout: float
    host = "127.0.0.1"  # its loopback address; a node of the local cluster has its own

    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name
        self.process = ManagedProcess(self.name, self.home, marker=str(self.home))

    @property
    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def ports(self) -> dict[str, int]: ...

    @abstractmethod
    def prepare(self) -> list[str]:
        """Fetch what is missing, write configuration, return the command line."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the service answers a real client request."""

    @property
    @abstractmethod
    def address(self) -> str: ...
