"""`backbone infra up | down | status | logs`: local Kafka and Cassandra as child processes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from backbone.settings import InfraSettings
from deploy.cassandra import Cassandra
from deploy.kafka import Kafka
from deploy.process import LaunchError, require_free_ports
from deploy.service import Service


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    version: str
    address: str
    pid: int | None
    healthy: bool
    detail: str = ""  # what the health check said, when it says more than healthy or not

    def line(self) -> str:
        state = "healthy" if self.healthy else ("running, not answering" if self.pid else "stopped")
        pid = f"pid {self.pid}" if self.pid else "no process"
        line = f"{self.name:<11} {self.version:<8} {self.address:<16} {pid:<12} {state}"
        return f"{line:<70} ({self.detail})" if self.detail else line


def services(settings: InfraSettings | None = None) -> list[Service]:
    settings = settings or InfraSettings.from_env()
    from deploy import secure

    if secure.wanted(settings):  # SASL_SSL Kafka, Cassandra with passwords and TLS (issue 23)
        return secure.services(settings)
    return [Kafka(settings), Cassandra(settings)]


def up(settings: InfraSettings | None = None, echo: bool = True) -> list[ServiceStatus]:
    """Start what is not running and wait until every service answers. Idempotent."""
    start_and_wait(services(settings), echo)
    return status(settings)


def start_and_wait(todo: list[Service], echo: bool) -> None:
    """Start those of `todo` that do not run, then wait for each: the JVMs boot in parallel."""
    started: list[Service] = []
    for svc in todo:
        if svc.process.pid() is None:
            require_free_ports(svc.name, svc.ports(), svc.host)
            argv = svc.prepare()
            svc.process.start(argv)
            started.append(svc)
            if echo:
                print(f"started {svc.name} {svc.version} (log: {svc.process.log_file})")
    for svc in todo:
        _wait_ready(svc, started_here=svc in started, echo=echo)


def _wait_ready(svc: Service, started_here: bool, echo: bool) -> None:
    t0 = time.monotonic()
    deadline = t0 + svc.start_timeout
    while time.monotonic() < deadline:
        if svc.ready():
            if echo and started_here:
                print(f"{svc.name} answers on {svc.address} after {time.monotonic() - t0:.1f}s")
            return
        if svc.process.exited():
            raise LaunchError(
                f"{svc.name} exited during start-up. Last lines of {svc.process.log_file}:\n"
                f"{svc.process.log_tail()}"
            )
        time.sleep(0.5)
    tail = svc.process.log_tail()
    if started_here:
        svc.process.stop()
    raise LaunchError(
        f"{svc.name} did not answer on {svc.address} within {svc.start_timeout:.0f}s. "
        f"Last lines of {svc.process.log_file}:\n{tail}"
    )


def down(settings: InfraSettings | None = None, echo: bool = True) -> None:
    """Stop only the processes `up` started (tracked by pid file); others are left alone."""
    stop_all(services(settings), echo)


def stop_all(running: list[Service], echo: bool) -> None:
    for svc in reversed(running):
        if svc.process.stop():
            if echo:
                print(f"stopped {svc.name}")
        elif echo:
            print(f"{svc.name} was not running")


def status(settings: InfraSettings | None = None) -> list[ServiceStatus]:
    return status_of(services(settings))


def status_of(svcs: list[Service]) -> list[ServiceStatus]:
    result = []
    for svc in svcs:
        pid = svc.process.pid()
        result.append(
            ServiceStatus(svc.name, svc.version, svc.address, pid, pid is not None and svc.ready())
        )
    return result


def logs(name: str, lines: int, settings: InfraSettings | None = None) -> str:
    return log_file_and_tail(name, lines, settings)[1]


def log_file_and_tail(
    name: str, lines: int, settings: InfraSettings | None = None
) -> tuple[Path, str]:
    for svc in services(settings):
        if svc.name == name:
            return svc.process.log_file, svc.process.log_tail(lines)
    raise LaunchError(f"unknown service {name!r}; choose kafka or cassandra")
