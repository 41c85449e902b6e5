"""`mcp-oauth-middleware check [TOKEN]`: the configuration checked against the authorization
server and, with a token, what the middleware decides and why (its own request path, in process)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..providers import provider_of
from ..urls import differences
from ._common import env_flag, fail
from ._common import rules as parse_rules


def add_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        description=__doc__,
        help="check the configuration against the authorization server; with TOKEN, what the middleware decides",
    )
    check.add_argument("token", nargs="?", help="an access token (omit to check the configuration only)")
    check.add_argument("--resource", required=True, help="the protected resource URI (the audience)")
    check.add_argument("--issuer", required=True, help="the authorization server's issuer, exactly as in its tokens")
    check.add_argument("--jwks-uri", help="skip discovery of the key set")
    check.add_argument("--audience", help="the audience tokens carry, when it is not the resource (Entra's client ID)")
    check.add_argument(
        "--no-audience",
        action="store_true",
        help="tokens carry no aud (Cognito's access tokens): check --allowed-client instead (audience=False)",
    )
    check.add_argument(
        "--allowed-client", action="append", default=[], help="a client id tokens may be issued to (repeatable)"
    )
    check.add_argument(
        "--required-claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a claim every token must carry with this value (repeatable; Cognito: token_use=access)",
    )
    check.add_argument(
        "--url",
        help="the URL clients use (behind a proxy: the public one), compared with --resource part by part",
    )
    check.add_argument("--scope", action="append", default=[], help="a required scope (repeatable)")
    check.add_argument(
        "--token-validation",
        choices=["jwt", "introspection", "both"],
        default="jwt",
        help="jwt: against the issuer's keys (default); introspection: RFC 7662, with --client-id and "
        "--client-secret; both: JWTs locally, anything else by introspection",
    )
    check.add_argument("--client-id", help="introspection: this resource server's client id")
    check.add_argument(
        "--client-secret", help="introspection: its secret (default: the MCP_AUTH_CLIENT_SECRET variable)"
    )
    for kind, example in (("tool", "delete_notes=notes:delete"), ("prompt", "incident=oncall"), ("resource", "")):
        check.add_argument(
            f"--{kind}-scope",
            action="append",
            default=[],
            metavar="NAME=SCOPES" if kind != "resource" else "PATTERN=SCOPES",
            help=f"a per-{kind} rule, as {kind}_scopes has it"
            + (f" (repeatable; {example})" if example else " (repeatable; file:///secret/*=secrets)"),
        )
    check.add_argument(
        "--lists",
        action="store_true",
        help="with TOKEN: list the running server's tools, prompts and resources and compare them with the rules",
    )
    check.add_argument("--strict-rules", action="store_true", help="with --lists: also name every uncovered tool")
    check.add_argument(
        "--allow-http",
        action="store_true",
        help="allow plain http beyond loopback, for a private network (or MCP_AUTH_ALLOW_HTTP=1)",
    )

    check.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_check(args))


@contextlib.contextmanager
def _reasons() -> Iterator[list[str]]:
    """The reasons the middleware logs while the block runs (one line per decision), kept
    for the command's own output instead of reaching the terminal as log lines."""
    reasons: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reason = getattr(record, "auth_reason", None)
            if isinstance(reason, str):
                reasons.append(reason)

    handler = Collect(logging.DEBUG)
    ours = logging.getLogger("mcp_auth_middleware")
    saved = ours.level, ours.propagate
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    ours.propagate = False
    try:
        yield reasons
    finally:
        ours.removeHandler(handler)
        ours.setLevel(saved[0])
        ours.propagate = saved[1]


async def _check(args: argparse.Namespace) -> int:
    """Runs the real startup check and request path in-process, so the answer is the middleware's."""
    from ..errors import ConfigurationError

    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["auth"] = scope["state"]["auth"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    try:
        middleware = _middleware(args, app)
    except ValueError as exc:
        print(f"INVALID CONFIGURATION  {exc}", file=sys.stderr)
        return 2
    provider = provider_of(args.issuer)
    if provider is not None:
        print(f"provider: {provider.name} (from the issuer); denials name the setting that fixes them")
    if args.url and (found := differences(args.url, args.resource)):
        print(f"URL MISMATCH  clients use {args.url}, but resource is {args.resource}: change resource to the URL")
        for difference in found:
            print(f"  {difference}")
        return 2
    with _reasons():  # the lines below say it once
        problem = await middleware.check()
    if isinstance(problem, ConfigurationError):
        print(f"MISCONFIGURED  {problem.detail}")
        return 2
    if problem is not None:
        print(f"UNREACHABLE  {problem.detail or problem.description}")
        return 3
    if args.token is None:
        print(f"OK  {args.resource} can validate tokens from {args.issuer} ({args.token_validation})")
        return 0
    return await _decide(args, middleware, seen)


def _middleware(args: argparse.Namespace, app: Any) -> Any:
    """The middleware the flags describe (ValueError naming what cannot work)."""
    from ..middleware import MCPAuthMiddleware

    allow_http = args.allow_http or env_flag("MCP_AUTH_ALLOW_HTTP")
    rules = {
        "tool_scopes": parse_rules(args.tool_scope, "--tool-scope"),
        "prompt_scopes": parse_rules(args.prompt_scope, "--prompt-scope"),
        "resource_scopes": parse_rules(args.resource_scope, "--resource-scope"),
    }
    options: dict[str, Any] = {"token_validation": args.token_validation, "allow_http": allow_http, **rules}
    if args.token_validation != "jwt":
        options |= {
            "client_id": args.client_id,
            "client_secret": args.client_secret or os.environ.get("MCP_AUTH_CLIENT_SECRET"),
        }
    own_validator = bool(args.audience or args.no_audience or args.allowed_client or args.required_claim)
    if own_validator and args.token_validation != "jwt":
        raise ValueError(
            "--audience, --no-audience, --allowed-client and --required-claim are for --token-validation jwt"
        )
    if own_validator:
        options["validator"] = _audience_validator(args, allow_http)
        options.pop("token_validation")
    return MCPAuthMiddleware(
        app,
        resource=args.resource,
        **({} if own_validator else {"issuer": args.issuer, "jwks_uri": args.jwks_uri}),
        authorization_servers=[args.issuer],
        required_scopes=args.scope,
        **options,
    )


async def _decide(args: argparse.Namespace, middleware: Any, seen: dict[str, Any]) -> int:
    """The token through the request path: ALLOW with the caller, or DENY with the reasons."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    path = "/" + args.resource.split("//", 1)[-1].partition("/")[2]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {args.token}".encode())],
        "scheme": "https",
        "asgi": {"version": "3.0"},
        "root_path": "",
        "server": ("localhost", 443),
        "client": ("127.0.0.1", 0),
    }
    with _reasons() as reasons:
        await middleware(scope, receive, send)
    status = messages[0]["status"]
    headers = {k.decode(): v.decode("latin-1") for k, v in messages[0]["headers"]}
    if status == 200:
        info = seen["auth"]
        print(f"ALLOW  sub={info.sub} client_id={info.client_id} scopes={' '.join(sorted(info.scopes))}")
        print(json.dumps(dict(info.claims), indent=2, default=str))
        return await _check_lists(args, middleware.config.scopes) if args.lists else 0
    print(f"DENY   HTTP {status}")
    for reason in reasons:
        print(f"why:   {reason}")
    if "www-authenticate" in headers:
        print(f"WWW-Authenticate: {headers['www-authenticate']}")
    body = messages[1].get("body", b"")
    if body:
        print(body.decode("utf-8", "replace"))
    return 1


def _audience_validator(args: argparse.Namespace, allow_http: bool) -> Any:
    """A JWT validator for another audience than the resource (or none, with the clients and
    claims that stand in for it), its keys discovered or given."""
    from functools import partial

    from ..discovery import Discovery
    from ..validators import JWTValidator

    discovery = Discovery(args.issuer, allow_http=allow_http)
    if args.no_audience and args.audience:
        raise ValueError("--no-audience or --audience, not both")
    claims = {}
    for pair in args.required_claim:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--required-claim {pair!r}: write NAME=VALUE (token_use=access)")
        claims[name] = value
    return JWTValidator(
        issuer=args.issuer,
        audience=False if args.no_audience else args.audience,
        allowed_clients=args.allowed_client or None,
        required_claims=claims or None,
        jwks_uri=args.jwks_uri,
        resolve_jwks_uri=None if args.jwks_uri else partial(discovery.endpoint, "jwks_uri"),
        allow_http=allow_http,
    )


async def _check_lists(args: argparse.Namespace, rules: Any) -> int:
    """What the running server lists, and the rules that name nothing in it: exit 1 if any."""
    from ..inventory import ListingFailedError, check_lists

    try:
        names, problems = await check_lists(args.resource, args.token, rules, strict=args.strict_rules)
    except ImportError as exc:
        return fail("check", f"--lists needs {exc.name or 'the MCP SDK'}: pip install 'mcp-oauth-middleware[mcp]'")
    except ListingFailedError as exc:
        return fail("check", f"could not list {args.resource}: {exc}", 3)
    for method, listed in names.items():
        print(f"{method}: {', '.join(listed) if listed else '(none)'}")
    for problem in problems:
        print(f"RULE   {problem}")
    return 1 if problems else 0
