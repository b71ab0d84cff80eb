"""``python -m gateway.setup setup|selftest ...``: the same commands as ``compound-gw``."""

from __future__ import annotations

import sys

from gateway.cliparser import Parser
from gateway.setup.cli import add_cli


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="compound-gw")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    from gateway.errors import ConfigError, GatewayError

    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
