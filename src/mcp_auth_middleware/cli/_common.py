"""What the commands share: one-line failures, a port check, flags from variables, rules."""

from __future__ import annotations

import logging
import os
import socket
import sys

from ..values import flag

__all__ = ["LOG_LEVELS", "env_flag", "fail", "port_free", "rules"]

#: The log levels the commands that serve take (--log-level, MCP_AUTH_LOG_LEVEL).
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def fail(command: str, problem: str, code: int = 2) -> int:
    """One line on stderr, no traceback: what is wrong and what to do."""
    print(f"mcp-oauth-middleware {command}: {problem}", file=sys.stderr)
    return code


def port_free(host: str, port: int) -> bool:
    """Whether uvicorn can listen on the port: with SO_REUSEADDR, as uvicorn binds, so that the
    connections a demo stopped a moment ago left in TIME_WAIT do not count as "in use"."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def env_flag(name: str) -> bool:
    return bool(flag(name, os.environ.get(name)))


def rules(values: list[str], flag: str) -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for value in values:
        name, sep, scopes = value.rpartition("=")
        if not sep or not name or not scopes:
            raise ValueError(f"{flag} {value!r}: write NAME=SCOPE (several scopes: NAME=a,b)")
        rules.setdefault(name, []).extend(scopes.replace(",", " ").split())
    return rules
