"""The `connector` command: `init` creates the organization's identity on the backbone,
`status` shows what this Connector holds, `serve` runs its REST API, mailbox consumer and
webhooks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from connector.backbone_client import BackboneError
from connector.config import ConnectorSettings
from connector.identities import create_identity, load_identities
from connector.keystore import Keystore, KeystoreError
from connector.store import SqliteStore


def cmd_init(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    store = SqliteStore(settings.database)
    keystore = Keystore.from_env(settings.data_dir)
    if store.identities() and not args.another:
        print("this Connector has an identity already (use --another for one more)",
              file=sys.stderr)  # fmt: skip
        return 1
    identity = asyncio.run(create_identity(settings, store, keystore))
    print(f"created identity {identity.address} (device {identity.device_id})")
    return 0


def cmd_status(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    store = SqliteStore(settings.database)
    identities = load_identities(store, Keystore.from_env(settings.data_dir))
    if not identities:
        print("no identity yet: run `connector init`")
        return 3
    for identity in identities:
        print(f"{identity.address}  device {identity.device_id}  "
              f"mailbox cursor {store.cursor(identity.address)}")  # fmt: skip
    return 0


def cmd_serve(settings: ConnectorSettings, args: argparse.Namespace) -> int:
    from connector.server import ServeError, serve  # the web stack only when serving

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per backbone call is noise
    try:
        serve(settings, Keystore.from_env(settings.data_dir))
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    parser.add_argument("--version", action="version", version="connector 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create this organization's identity on the backbone")
    p_init.add_argument("--another", action="store_true", help="add a further identity")
    p_init.set_defaults(func=cmd_init)
    p_status = sub.add_parser("status", help="the identities this Connector holds")
    p_status.set_defaults(func=cmd_status)
    p_serve = sub.add_parser("serve", help="run the REST API, the mailbox consumer and webhooks")
    p_serve.set_defaults(func=cmd_serve)
    args = parser.parse_args(argv)
    settings = ConnectorSettings.from_env()
    try:
        code: int = args.func(settings, args)
    except KeystoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BackboneError as exc:
        print(f"error from the backbone: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
