"""`mcp-oauth-middleware gateway`: the authorization service a gateway asks about every
request (nginx auth_request, Caddy forward_auth, Traefik ForwardAuth, Envoy ext_authz).

Needs the gateway extra: pip install 'mcp-oauth-middleware[gateway]'. Every option of the
middleware is read from its MCP_AUTH_* variable (MCP_AUTH_REQUIRED_SCOPES, MCP_AUTH_TOOL_SCOPES,
MCP_AUTH_RATE_LIMIT_STORAGE, ...; a misspelled one stops it at startup); the flags below set the
usual ones. An issuer on plain http beyond loopback needs MCP_AUTH_ALLOW_HTTP=1. Denials are
logged at INFO, the default level (--log-level, MCP_AUTH_LOG_LEVEL). docs/gateways.md has the
gateways' configurations."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from ._common import LOG_LEVELS, fail, port_free, rules


def add_parser(commands: Any) -> None:
    gateway = commands.add_parser(
        "gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve the authorization service for a gateway (nginx auth_request, Caddy forward_auth, Traefik "
        "ForwardAuth, Envoy ext_authz); every option of the middleware from its MCP_AUTH_* variable",
    )
    gateway.add_argument(
        "--gateway",
        choices=["nginx", "caddy", "traefik", "envoy"],
        help="the gateway that asks: it decides which headers name the original request (or MCP_AUTH_GATEWAY)",
    )
    gateway.add_argument("--resource", help="the MCP server's public URL (or MCP_AUTH_RESOURCE)")
    gateway.add_argument("--issuer", help="the authorization server (or MCP_AUTH_ISSUER)")
    gateway.add_argument(
        "--trusted-gateways",
        help="addresses or networks subrequests may come from (or MCP_AUTH_TRUSTED_GATEWAYS; default loopback)",
    )
    gateway.add_argument(
        "--scope",
        action="append",
        default=[],
        help="a scope every request needs (repeatable; or MCP_AUTH_REQUIRED_SCOPES)",
    )
    gateway.add_argument(
        "--tool-scope",
        action="append",
        default=[],
        metavar="NAME=SCOPES",
        help="a per-tool rule (repeatable; delete_notes=notes:delete; or MCP_AUTH_TOOL_SCOPES)",
    )
    gateway.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=9100, help="port (default 9100)")
    gateway.add_argument(
        "--log-level",
        type=str.lower,
        choices=list(LOG_LEVELS),
        help="what the log shows (or MCP_AUTH_LOG_LEVEL): info (the default) a line for every denial, "
        "warning only misconfigurations and unreachable servers, debug also each challenge (and each request "
        "allowed, with MCP_AUTH_LOG_ALLOWED=1)",
    )

    gateway.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..gateway import GatewayService

    flags: dict[str, Any] = {"gateway": args.gateway, "resource": args.resource, "issuer": args.issuer}
    if args.trusted_gateways is not None:
        flags["trusted_gateways"] = args.trusted_gateways
    if args.scope:
        flags["required_scopes"] = args.scope
    try:
        if args.tool_scope:
            flags["tool_scopes"] = rules(args.tool_scope, "--tool-scope")
        service = GatewayService.from_env(**{name: value for name, value in flags.items() if value is not None})
    except (TypeError, ValueError) as exc:
        problem = str(exc).removeprefix("GatewayService: ")
        for flag, variable in (("--gateway", "MCP_AUTH_GATEWAY"), ("--resource", "MCP_AUTH_RESOURCE")):
            problem = problem.replace(f"{variable} is required", f"{flag} (or {variable}) is required")
        return fail("gateway", problem)
    try:
        import uvicorn
    except ImportError:
        return fail("gateway", "needs uvicorn: pip install 'mcp-oauth-middleware[gateway]'")
    level = args.log_level or os.environ.get("MCP_AUTH_LOG_LEVEL", "info").strip().lower()
    if level not in LOG_LEVELS:
        return fail("gateway", f"MCP_AUTH_LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    if not port_free(args.host, args.port):
        return fail("gateway", f"port {args.port} on {args.host} is in use; choose another with --port", 1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mcp_auth_middleware").setLevel(LOG_LEVELS[level])  # not the libraries' INFO lines
    options = service.options
    config = service.config
    decided = (
        f"; decided by {config.decision_engine!r} for {' '.join(sorted(config.decided_methods))}"
        if config.decision_engine is not None
        else ""
    )
    print(
        f"authorization service for {config.resource.url} ({options.gateway}) on "
        f"http://{args.host}:{args.port}{options.check_path}; subrequests only from "
        f"{' '.join(options.trusted_gateways)}; {config.scopes.describe()}{decided}; without MCP headers: "
        f"{options.without_mcp_headers}; log level {level}",
        flush=True,
    )
    # No proxy headers: the service trusts the gateway by the peer address, which uvicorn would
    # otherwise replace with the client's from X-Forwarded-For.
    uvicorn.run(service, host=args.host, port=args.port, proxy_headers=False, lifespan="on", log_level="warning")
    return 0
