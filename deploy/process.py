"""What the launcher adds to `localproc`: its error, and the check that a service's ports
are free before it starts."""

from __future__ import annotations

from localproc.ports import port_in_use


class LaunchError(RuntimeError):
    """A service could not be prepared or started; the message says what to do."""


def require_free_ports(service: str, ports: dict[str, int], host: str = "127.0.0.1") -> None:
    taken = [f"{label} {port}" for label, port in ports.items() if port_in_use(port, host)]
    if taken:
        raise LaunchError(
            f"{service} cannot start: port {', '.join(taken)} is already in use on {host}. "
            f"Stop whatever holds it, or choose other ports (see README: configuration)."
        )
