"""`mcp-oauth-middleware gateway-test URL --token T --upstream-port P`: whether a client's own
identity headers can reach the upstream through a running gateway.

The identity headers are as true as the gateway's configuration, and a line forgotten there
is silent. This command stands in for the upstream on its port (stop the MCP server for the
test), sends a request through the gateway with a token the service accepts and forged
identity headers (and look-alikes with underscores, which CGI-style servers read as the same),
and says, one line each, which of them the upstream would have seen and the configuration line
that removes it. Exit 0: none got through; 1: some did; 3: the test could not be run.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..gateway.options import DEFAULT_IDENTITY_HEADERS
from ._common import fail, port_free

FORGED = "forged-by-gateway-test"
_VARIABLES = {"sub": "auth_subject", "client_id": "auth_client_id", "scopes": "auth_scopes", "issuer": "auth_issuer"}


def add_parser(commands: Any) -> None:
    test = commands.add_parser(
        "gateway-test",
        help="check a running gateway: can a client's own identity headers reach the upstream?",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("url", help="the MCP server's URL at the gateway (http://127.0.0.1:8080/mcp)")
    test.add_argument("--token", required=True, help="an access token the service accepts for that URL")
    test.add_argument(
        "--upstream-port",
        type=int,
        required=True,
        help="the port the gateway proxies to (127.0.0.1): the test answers there in the upstream's place",
    )
    test.add_argument(
        "--gateway",
        choices=["nginx", "caddy", "traefik", "envoy"],
        help="the gateway in front: the fixes are then written in its configuration's words",
    )
    test.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..testing import serve
    except ImportError:  # pragma: no cover - uvicorn is in the gateway extra
        return fail("gateway-test", "needs uvicorn: pip install 'mcp-oauth-middleware[gateway]'")
    if not port_free("127.0.0.1", args.upstream_port):
        return fail(
            "gateway-test",
            f"port {args.upstream_port} is in use: stop the MCP server behind the gateway while the test answers in "
            "its place",
            3,
        )
    seen: list[dict[str, str]] = []

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append({name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    with serve(upstream, port=args.upstream_port, lifespan="off"):
        return asyncio.run(_test(args, seen))


async def _test(args: argparse.Namespace, seen: list[dict[str, str]]) -> int:
    import httpx2

    names = {**DEFAULT_IDENTITY_HEADERS, "assertion": "X-Auth-Assertion"}
    look_alikes = [name.replace("-", "_") for name in names.values()]
    forged = [(name, FORGED) for name in [*names.values(), *look_alikes]]
    headers = [("Authorization", f"Bearer {args.token}"), ("Accept", "text/event-stream"), *forged]
    try:
        async with httpx2.AsyncClient(timeout=15) as http:
            response = await http.get(args.url, headers=headers)
    except httpx2.HTTPError as exc:
        return fail("gateway-test", f"could not reach {args.url}: {exc}", 3)
    if not seen:
        return fail(
            "gateway-test",
            f"the gateway answered HTTP {response.status_code} without asking port {args.upstream_port}: "
            + (
                "pass a token the service accepts (--token)"
                if response.status_code in (400, 401, 403)
                else "is that the port it proxies to?"
            ),
            3,
        )
    received = {name.lower(): value for name, value in seen[-1].items()}
    problems = [
        f"FORGED  {name}: the upstream saw the client's own value; {_fix(args.gateway, what, name)}"
        for what, name in names.items()
        if received.get(name.lower()) == FORGED
    ]
    problems += [
        f"FORGED  {name}: the upstream saw this look-alike, which CGI-style servers read as "
        f"{name.replace('_', '-')}; {_look_alike_fix(args.gateway)}"
        for name in look_alikes
        if name.lower() in received
    ]
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"OK  none of the {len(forged)} identity headers a client sent (look-alikes included) reached the upstream")
    return 0


def _fix(gateway: str | None, what: str, name: str) -> str:
    if gateway == "nginx":
        variable = _VARIABLES.get(what, "auth_assertion")
        return (
            f"add `proxy_set_header {name} ${variable};` (with its `auth_request_set ${variable} "
            f"$upstream_http_{name.lower().replace('-', '_')};`) to `location /mcp`"
        )
    if gateway == "caddy":
        return f"add `request_header -{name}` (or -X-Auth-*) before forward_auth, and {name} to copy_headers"
    if gateway == "traefik":
        return f"add {name} to the forwardAuth middleware's authResponseHeaders"
    if gateway == "envoy":
        return f"add {name.lower()} to authorization_response.allowed_upstream_headers"
    return f"have the gateway overwrite or remove {name} on every request (docs/gateways.md; --gateway for its words)"


def _look_alike_fix(gateway: str | None) -> str:
    if gateway == "nginx":
        return "nginx passes underscored headers only with `underscores_in_headers on`: remove that line"
    if gateway == "caddy":
        return "add `request_header -X_Auth_*`, `-X-Auth_*` and `-X_Auth-*` before forward_auth"
    return "have the gateway drop request headers whose names have underscores"
