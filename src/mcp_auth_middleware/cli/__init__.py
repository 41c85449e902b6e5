"""The `mcp-oauth-middleware` command: demo, discover, check, gateway and the rest, one module
each; every module adds its parser and runs its command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import __version__
from . import check, demo, discover, examples, gateway, gateway_test
from .discover import readiness_problems

__all__ = ["main", "readiness_problems"]

#: In the order `--help` lists them.
COMMANDS = (demo, discover, check, gateway, gateway_test, examples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mcp-oauth-middleware",
        description="Make an MCP server an OAuth 2.1 resource server: try it (demo), check an authorization "
        "server (discover) or a token (check), or serve the checks for a gateway (gateway).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code
