"""The `mcp-oauth-middleware` command: demo, discover, check, gateway and the rest, one module
each; every module adds its parser and runs its command."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from . import cedar_init, check, demo, discover, examples, gateway, gateway_test, token
from .discover import readiness_problems

__all__ = ["main", "readiness_problems"]

#: In the order `--help` lists them.
COMMANDS = (demo, token, discover, check, gateway, gateway_test, cedar_init, examples)


class _Parser(argparse.ArgumentParser):
    """argparse, and for an option it does not know the one that was meant (`--resouce`)."""

    argv: Sequence[str] = ()

    def error(self, message: str) -> NoReturn:
        known = list(self._option_string_actions)
        for action in self._actions:  # the top-level parser: every command's options
            if isinstance(action, argparse._SubParsersAction):
                known += [o for command in action.choices.values() for o in command._option_string_actions]
        hints = [
            f"{name} (did you mean {close[0]}?)"
            for word in self.argv
            if word.startswith("--")
            and (name := word.split("=", 1)[0]) not in known
            and (close := difflib.get_close_matches(name, known, n=1))
        ]
        super().error(f"{message}; {'; '.join(hints)}" if hints else message)


def main(argv: Sequence[str] | None = None) -> int:
    _Parser.argv = sys.argv[1:] if argv is None else list(argv)
    parser = _Parser(
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
