"""The `connector` command. Its subcommands (init, serve, status) are not built yet: issue 7."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    parser.add_argument("--version", action="version", version="connector 0.1.0")
    parser.parse_args(argv)
    print("the Connector is not built yet (see issue 7)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
