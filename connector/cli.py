"""The `connector` command: `new-key` makes a storage key file, `init` creates the
organization's identity on the backbone, `status` shows what this Connector holds,
`serve` runs its REST API, mailbox consumer and webhooks in the foreground, `start` and
`stop` do so in the background (one process per data directory, tracked by a pid file),
and `listen` is a tiny webhook receiver that prints what a Connector announces."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx

from connector.backbone_client import BackboneError
from connector.config import ConnectorSettings, SettingsError
from connector.identities import create_identity, load_identities
from connector.keystore import Keystore, KeystoreError, new_key_file, private_database
from connector.store import SqliteStore
from localproc.process import ManagedProcess

START_TIMEOUT_S = 30.0


def _existing_addresses(settings: ConnectorSettings) -> list[str]:
    """The identities in the data directory, read without creating anything there."""
    if not settings.database.exists():
        return []
    store = SqliteStore(settings.database)
    try:
        return [row.address for row in store.identities()]
    finally:
        store.close()


def cmd_new_key(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if new_key_file(path):
        print(f"wrote a new random key to {path} (mode 0600)")
    else:
        print(f"{path} exists: kept it (a key is never overwritten)")
    return 0


def cmd_init(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    # Refuse before touching anything: no key, salt or database is written for a refusal.
    existing = _existing_addresses(settings)
    if existing and not args.another:
        if args.if_missing:
            print(f"this Connector has its identity already: {existing[0]}")
            return 0
        print(
            f"this Connector has an identity already ({existing[0]} in {settings.data_dir});"
            " use --another for one more, or another CONNECTOR_DATA_DIR for another"
            " organization",
            file=sys.stderr,
        )
        return 1
    settings.require_client_secret()
    keystore = Keystore.from_env(settings.data_dir)
    private_database(settings.database)
    store = SqliteStore(settings.database)
    try:
        if existing:  # --another: the key must be the one that seals the first identity
            load_identities(store, keystore)
        identity = asyncio.run(create_identity(settings, store, keystore))
    finally:
        store.close()
    print(
        f"created identity {identity.address} (device {identity.device_id}) in {settings.data_dir}"
    )
    return 0


def _process(settings: ConnectorSettings) -> ManagedProcess:
    # The marker ends with a space: the data directory /tmp/org-a must not match /tmp/org-ab.
    return ManagedProcess("connector", settings.data_dir, marker=f"--run-dir {settings.data_dir} ")


def _health(settings: ConnectorSettings, timeout: float = 3) -> dict[str, Any] | None:
    """The running Connector's /health report, or None when nothing answers."""
    url = f"http://{settings.host}:{settings.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            report: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as err:  # 503: unhealthy, with the report
        try:
            report = json.loads(err.read())
        except ValueError:
            return None
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return report


def _print_health(report: dict[str, Any]) -> None:
    print(f"health: {'healthy' if report.get('isHealthy') else 'UNHEALTHY'}")
    problems = report.get("problems", {})
    for part, state in report.get("services", {}).items():
        print(f"  {part:<24} {state}{f'  ({problems[part]})' if part in problems else ''}")


def cmd_status(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    if not _existing_addresses(settings):
        print(f"no identity in {settings.data_dir} yet: run `connector init`")
        return 3
    store = SqliteStore(settings.database)
    try:
        identities = load_identities(store, Keystore.from_env(settings.data_dir))
        for identity in identities:
            print(
                f"{identity.address}  device {identity.device_id}  "
                f"mailbox cursor {store.cursor(identity.address)}"
            )
    finally:
        store.close()
    pid = _process(settings).pid()
    report = _health(settings)
    where = f"http://{settings.host}:{settings.port}"
    if report is None:
        # Not running is a state, not a failure: `connector start` starts it.
        print(
            f"not serving: nothing answers on {where}"
            + (f" (pid {pid} from `connector start` is starting?)" if pid else "")
        )
        return 0
    print(f"serving on {where}" + (f" (pid {pid}, from `connector start`)" if pid else ""))
    _print_health(report)
    return 0 if report.get("isHealthy") else 1


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per backbone call is noise


def cmd_serve(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    from connector.server import ServeError, serve  # the web stack only when serving

    _logging()
    try:
        serve(settings, Keystore.from_env(settings.data_dir))
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_start(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    from connector.server import ServeError, check, check_listen_address

    process = _process(settings)
    url = f"http://{settings.host}:{settings.port}"
    pid = process.pid()
    if pid is not None:
        print(f"already running: pid {pid} on {url} (log: {process.log_file})")
        return 0
    try:
        identity = check(settings, Keystore.from_env(settings.data_dir))
        check_listen_address(settings.host, settings.port)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "connector.cli", "serve", "--run-dir", str(settings.data_dir)]
    pid = process.start(argv)
    deadline = time.monotonic() + args.timeout
    report: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if process.exited():
            print(
                f"error: the Connector exited during start-up. Last lines of "
                f"{process.log_file}:\n{process.log_tail(20)}",
                file=sys.stderr,
            )
            return 1
        report = _health(settings)
        if report is not None and (
            report.get("isHealthy")
            or report.get("services", {}).get("backboneAuthentication") == "unhealthy"
        ):
            break  # healthy, or refused by the backbone: waiting longer will not help
        time.sleep(0.2)
    if report is not None and report.get("isHealthy"):
        print(
            f"started the Connector of {identity.address}: {url} "
            f"(pid {pid}, log: {process.log_file})"
        )
        return 0
    if report is None:
        print(
            f"error: the Connector (pid {pid}) did not answer on {url} within {args.timeout:.0f}s",
            file=sys.stderr,
        )
    else:
        print(f"error: the Connector (pid {pid}) runs but is not healthy:", file=sys.stderr)
        _print_health(report)
    print(
        f"last lines of {process.log_file}:\n{process.log_tail(20)}\n"
        "it keeps retrying; `connector stop` stops it",
        file=sys.stderr,
    )
    return 1


def cmd_stop(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    process = _process(settings)
    pid = process.pid()
    if process.stop(timeout=20):
        print(f"stopped the Connector in {settings.data_dir} (pid {pid})")
    else:
        print(f"no Connector started by `connector start` runs in {settings.data_dir}")
    return 0


def cmd_listen(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    from connector.listener import listen

    return listen(args.host, args.port, args.secret, args.count, args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    parser.add_argument("--version", action="version", version="connector 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True)
    p_key = sub.add_parser("new-key", help="write a random key to FILE unless FILE exists")
    p_key.add_argument("file", help="e.g. for CONNECTOR_STORAGE_KEY_FILE (32 bytes, base64)")
    p_key.set_defaults(func=cmd_new_key)
    p_init = sub.add_parser("init", help="create this organization's identity on the backbone")
    p_init.add_argument("--another", action="store_true", help="add a further identity")
    p_init.add_argument(
        "--if-missing", action="store_true", help="succeed without change when an identity exists"
    )
    p_init.set_defaults(func=cmd_init)
    p_status = sub.add_parser("status", help="identities held, and the running one's health")
    p_status.set_defaults(func=cmd_status)
    p_serve = sub.add_parser("serve", help="run the REST API, the mailbox consumer and webhooks")
    p_serve.add_argument("--run-dir", help=argparse.SUPPRESS)  # marks a `start`ed process
    p_serve.set_defaults(func=cmd_serve)
    p_start = sub.add_parser("start", help="`serve` in the background; wait until healthy")
    p_start.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds")
    p_start.set_defaults(func=cmd_start)
    p_stop = sub.add_parser("stop", help="stop the Connector `start` started in this data dir")
    p_stop.set_defaults(func=cmd_stop)
    p_listen = sub.add_parser("listen", help="receive webhooks and print each event")
    p_listen.add_argument("--host", default="127.0.0.1")
    p_listen.add_argument("--port", type=int, default=8093)
    p_listen.add_argument("--secret", default="", help="check X-Connector-Signature with it")
    p_listen.add_argument("--count", type=int, default=0, help="exit after this many events")
    p_listen.add_argument("--timeout", type=float, default=0, help="exit 1 after these seconds")
    p_listen.set_defaults(func=cmd_listen)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = ConnectorSettings.from_env()
        code: int = args.func(settings, args)
    except (SettingsError, KeystoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BackboneError as exc:
        print(f"error from the backbone: {_explain(exc)}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        url = exc.request.url
        print(
            f"error: cannot reach the backbone at {url.scheme}://{url.netloc.decode()} "
            f"({type(exc).__name__}): is it running (`backbone status`), and is "
            "CONNECTOR_BACKBONE_URL right?",
            file=sys.stderr,
        )
        return 2
    return code


def _explain(exc: BackboneError) -> str:
    if exc.code == "invalid_client":
        return (
            f"{exc} — the backbone does not know CONNECTOR_CLIENT_ID and "
            "CONNECTOR_CLIENT_SECRET together; check both"
        )
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
