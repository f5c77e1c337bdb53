"""The `backbone` command: local infrastructure and (later) the backbone's processes."""

from __future__ import annotations

import argparse
import sys

from deploy import infra
from deploy.process import LaunchError


def _print_status() -> bool:
    rows = infra.status()
    for row in rows:
        print(row.line())
    return all(row.healthy for row in rows)


def cmd_infra(args: argparse.Namespace) -> int:
    if args.action == "up":
        infra.up()
        return 0 if _print_status() else 1
    if args.action == "down":
        infra.down()
        return 0
    if args.action == "status":
        return 0 if _print_status() else 3
    if args.action == "logs":
        print(infra.logs(args.service, args.lines))
        return 0
    raise AssertionError(args.action)


def cmd_up(args: argparse.Namespace) -> int:
    infra.up()
    return 0 if _print_status() else 1


def cmd_down(args: argparse.Namespace) -> int:
    infra.down()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbone", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_infra = sub.add_parser("infra", help="local Kafka (KRaft) and Cassandra")
    p_infra.add_argument("action", choices=["up", "down", "status", "logs"])
    p_infra.add_argument("service", nargs="?", default="kafka", choices=["kafka", "cassandra"])
    p_infra.add_argument("-n", "--lines", type=int, default=60, help="log lines to show")
    p_infra.set_defaults(func=cmd_infra)

    p_up = sub.add_parser("up", help="start the whole backbone on this machine")
    p_up.set_defaults(func=cmd_up)
    p_down = sub.add_parser("down", help="stop everything `up` started")
    p_down.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
