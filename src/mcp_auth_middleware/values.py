"""Reading configuration values the way users write them, and refusing the ones that cannot work.

Every option that takes a list (scopes, URLs, networks, claim names) accepts one string too,
separated by spaces or commas, the same in keywords and in `MCP_AUTH_*` variables:
`required_scopes="mcp"` means the scope `mcp` (never `m`, `c`, `p`), and
`required_scopes="mcp,notes:read"` the two scopes `mcp` and `notes:read`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK_HOSTS",
    "SCOPE_TOKEN",
    "check_scope_token",
    "check_server_url",
    "check_variable_names",
    "flag",
    "is_loopback",
    "network_list",
    "read_variables",
    "word_list",
    "word_lists",
]

#: RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E (no space, quote or backslash).
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def word_list(value: str | Iterable[str] | None) -> list[str]:
    """A list from a list, or from one string separated by spaces or commas."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.replace(",", " ").split()
    values = list(value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"expected strings, got {values!r}")
    return values


def network_list(option: str, value: str | Iterable[str]) -> tuple[str, ...]:
    """Addresses or networks (`10.0.0.0/8`, `::1`), each checked; ValueError naming `option`."""
    networks = tuple(word_list(value))
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{option}: {network!r} is not an address or network") from None
    return networks


def read_variables(
    table: Mapping[str, tuple[str, Callable[[str], Any]]],
    environ: Mapping[str, str] | None,
    known: Iterable[str] = (),
) -> dict[str, Any]:
    """The options that the variables set in `environ` (default: the process's) give, by `table`
    (variable -> option name and how its text is read; `bool` reads a `flag`). An `MCP_AUTH_*`
    variable neither in `table` nor in `known` is a ValueError (check_variable_names)."""
    env = os.environ if environ is None else environ
    check_variable_names(env, {*table, *known})
    options: dict[str, Any] = {}
    for variable, (name, read) in table.items():
        text = env.get(variable)
        if text is not None:
            options[name] = flag(variable, text) if read is bool else read(text)
    return options


def check_variable_names(environ: Mapping[str, str], known: Iterable[str]) -> None:
    """A ValueError naming an `MCP_AUTH_*` variable that nothing reads, with the closest known
    one: `MCP_AUTH_REQUIRED_SCOPE=admin` (an S missing) must not leave every caller in."""
    names = sorted(known)
    for variable in environ:
        if variable.startswith("MCP_AUTH_") and variable not in names:
            close = difflib.get_close_matches(variable, names, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "docs/configuration.md lists them"
            raise ValueError(f"unknown variable {variable} ({hint}): nothing reads it")


def word_lists(mapping: Mapping[str, str | Iterable[str]] | None) -> dict[str, list[str]] | None:
    """`{"tool": "a b"}` and `{"tool": ["a", "b"]}` alike."""
    return None if mapping is None else {key: word_list(value) for key, value in mapping.items()}


def check_scope_token(scope: str) -> str:
    """A configured scope that can be written into a challenge (RFC 6749 §3.3), or ValueError."""
    if not isinstance(scope, str) or not SCOPE_TOKEN.fullmatch(scope):
        raise ValueError(f"not a valid OAuth scope token: {scope!r}")
    return scope


def flag(name: str, value: str | None) -> bool | None:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (any case; empty is false), None
    when unset. Anything else is a ValueError naming the variable: a misspelled `ture` must
    not quietly turn a security switch off."""
    if value is None:
        return None
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean: use 1/true/yes/on or 0/false/no/off")


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def check_server_url(name: str, url: str, *, allow_http: bool = False) -> str:
    """An issuer or protected resource URL that can work: absolute, https (plain http only for
    loopback, or with `allow_http` for private networks), no query or fragment (RFC 8414 §2 for
    issuers; RFC 8707 §2 and RFC 9728 §1.2 for resources)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{name} must be a non-empty URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not parts.scheme or not parts.netloc:
        raise ValueError(
            f"{name} {url!r} is not an absolute URL: write it in full, scheme and host included "
            "(https://host/path; plain http only on loopback or with allow_http)"
        )
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} {url!r} must be an https URL (plain http only on loopback or with allow_http)")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"{name} must not have a query or fragment: {url!r}")
    if '"' in url or "\\" in url or any(c.isspace() for c in url):
        raise ValueError(f"{name} contains characters not allowed in a URI: {url!r}")
    if scheme == "http" and not allow_http and not is_loopback(url):
        raise ValueError(
            f"{name} {url!r} uses plain http on a host that is not loopback: use https, or allow plain http on "
            "a private network (allow_http=True, MCP_AUTH_ALLOW_HTTP=1, or --allow-http)"
        )
    return url
