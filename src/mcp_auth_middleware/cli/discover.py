"""`mcp-oauth-middleware discover URL`: an authorization server's metadata, from its issuer or
from an MCP server's protected-resource metadata, and whether MCP clients can use it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

from ..fetch import check_fetch_url
from ._common import env_flag, fail

__all__ = ["readiness_problems"]


def add_parser(commands: Any) -> None:
    discover = commands.add_parser(
        "discover",
        description=__doc__,
        help="fetch an authorization server's metadata (given its issuer, or an MCP server URL whose "
        "protected-resource metadata names it) and check that MCP clients can use it",
    )
    discover.add_argument("issuer", help="the issuer URL, or the URL of an MCP server")
    discover.add_argument(
        "--allow-http", action="store_true", help="allow plain http beyond loopback (private network)"
    )

    discover.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(discover(args.issuer, allow_http=args.allow_http))


def readiness_problems(document: Mapping[str, Any]) -> list[str]:
    """What keeps MCP clients (or this middleware) from using an authorization server, read
    from its metadata (RFC 8414 §2; MCP authorization: Authorization Server Discovery, Client
    Registration Approaches, Authorization Code Protection)."""
    problems = [
        f"no {member} (RFC 8414 §2)"
        for member in ("authorization_endpoint", "token_endpoint")
        if not isinstance(document.get(member), str)
    ]
    methods = document.get("code_challenge_methods_supported")
    if not (isinstance(methods, list) and "S256" in methods):
        problems.append("code_challenge_methods_supported lacks S256: MCP clients refuse a server without PKCE S256")
    if not document.get("registration_endpoint") and document.get("client_id_metadata_document_supported") is not True:
        problems.append(
            "neither registration_endpoint (RFC 7591) nor client_id_metadata_document_supported: "
            "MCP clients cannot register themselves, only pre-registered client ids work"
        )
    if not document.get("jwks_uri") and not document.get("introspection_endpoint"):
        problems.append("neither jwks_uri nor introspection_endpoint: the resource server cannot validate tokens")
    return problems


async def discover(url: str, *, allow_http: bool = False) -> int:
    """The authorization server's metadata, from its issuer; given an MCP server's URL, first
    its protected-resource metadata (RFC 9728 §3), as MCP clients find their way."""
    from ..discovery import discover_authorization_server, discover_resource
    from ..errors import AuthError, ConfigurationError

    try:
        allow_http = allow_http or env_flag("MCP_AUTH_ALLOW_HTTP")
        check_fetch_url(url, allow_http=allow_http)
        try:
            document = await discover_authorization_server(url, allow_http=allow_http)
        except ConfigurationError as not_an_issuer:
            resource = await discover_resource(url, allow_http=allow_http)
            if resource is None:
                raise not_an_issuer from None
            servers = resource.get("authorization_servers")
            if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
                return fail("discover", f"{url} is a protected resource whose metadata names no authorization server")
            print(
                f"{url} is a protected resource (RFC 9728); its authorization server is {servers[0]}", file=sys.stderr
            )
            if resource.get("resource") != url:
                print(
                    f"warning: its metadata says resource {resource.get('resource')!r}, not {url!r}: MCP clients "
                    "compare the two exactly and stop (RFC 9728 §3.3)",
                    file=sys.stderr,
                )
            document = await discover_authorization_server(servers[0], allow_http=allow_http)
    except ValueError as exc:  # a URL that cannot be fetched as given
        return fail("discover", str(exc))
    except AuthError as exc:
        return fail("discover", f"discovery failed: {exc.detail or exc.description}", 1)
    print(json.dumps(document, indent=2))
    problems = readiness_problems(document)
    for problem in problems:
        print(f"missing: {problem}", file=sys.stderr)
    print(
        "note: support for resource indicators (RFC 8707), which MCP clients send, is not visible in metadata; "
        "`check` with a real token shows whether tokens carry the resource as audience",
        file=sys.stderr,
    )
    issuer = document.get("issuer")
    if problems:
        print(f"NOT READY  {issuer}: {len(problems)} thing(s) missing above", file=sys.stderr)
        return 1
    registration = "registration (RFC 7591)" if document.get("registration_endpoint") else "client metadata documents"
    validation = " and ".join(m for m in ("jwks_uri", "introspection_endpoint") if document.get(m))
    print(
        f"OK  {issuer}: MCP clients can register ({registration}) and sign in with PKCE S256; resource servers "
        f"validate its tokens through its {validation}",
        file=sys.stderr,
    )
    return 0
