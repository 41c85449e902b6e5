"""The `mcp-oauth-middleware` command: demo, discover ISSUER, check [TOKEN]."""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .fetch import check_fetch_url
from .providers import provider_of
from .urls import differences
from .values import LOOPBACK_HOSTS, flag

__all__ = ["main", "readiness_problems"]

#: The log levels the commands that serve take (--log-level, MCP_AUTH_LOG_LEVEL).
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcp-oauth-middleware", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a local authorization server and a protected MCP server")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to bind (default 127.0.0.1; the demo is plain http and approves every sign-in)",
    )
    demo.add_argument("--port", type=int, default=8000, help="MCP server port (default 8000)")
    demo.add_argument("--as-port", type=int, default=9000, help="authorization server port (default 9000)")
    demo.add_argument(
        "--token-format",
        choices=["jwt", "opaque"],
        default="jwt",
        help="jwt: RFC 9068 access tokens checked against the JWKS (default); "
        "opaque: random tokens checked by RFC 7662 introspection",
    )

    discover = commands.add_parser(
        "discover",
        help="fetch an authorization server's metadata (given its issuer, or an MCP server URL whose "
        "protected-resource metadata names it) and check that MCP clients can use it",
    )
    discover.add_argument("issuer", help="the issuer URL, or the URL of an MCP server")
    discover.add_argument(
        "--allow-http", action="store_true", help="allow plain http beyond loopback (private network)"
    )

    commands.add_parser("examples", help="where the example servers are, and how to run them")

    check = commands.add_parser(
        "check",
        help="check the configuration against the authorization server; with TOKEN, what the middleware decides",
    )
    check.add_argument("token", nargs="?", help="an access token (omit to check the configuration only)")
    check.add_argument("--resource", required=True, help="the protected resource URI (the audience)")
    check.add_argument("--issuer", required=True)
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
    check.add_argument("--token-validation", choices=["jwt", "introspection", "both"], default="jwt")
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

    gateway = commands.add_parser(
        "gateway",
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

    args = parser.parse_args(argv)
    if args.command == "gateway":
        return _gateway(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "examples":
        return _examples()
    if args.command == "discover":
        return asyncio.run(_discover(args.issuer, allow_http=args.allow_http))
    return asyncio.run(_check(args))


def _fail(command: str, problem: str, code: int = 2) -> int:
    """One line on stderr, no traceback: what is wrong and what to do."""
    print(f"mcp-oauth-middleware {command}: {problem}", file=sys.stderr)
    return code


def _demo(args: argparse.Namespace) -> int:
    if args.host.strip("[]").lower() not in LOOPBACK_HOSTS:
        return _fail(
            "demo",
            f"--host {args.host} is not a loopback address: the demo serves plain http and signs everyone in "
            "without asking, so it binds only 127.0.0.1, ::1 or localhost",
        )
    busy = [port for port in (args.port, args.as_port) if not _port_free(args.host, port)]
    if busy:
        return _fail("demo", f"port {busy[0]} on {args.host} is in use; choose others with --port and --as-port", 1)
    try:
        from .demo import run_demo
    except ImportError as exc:
        return _fail("demo", f"needs {exc.name or 'FastMCP'}: pip install 'mcp-oauth-middleware[demo]'")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the demo ends
        run_demo(args.host.strip("[]"), args.port, args.as_port, args.token_format)
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from .gateway import GatewayService

    flags: dict[str, Any] = {"gateway": args.gateway, "resource": args.resource, "issuer": args.issuer}
    if args.trusted_gateways is not None:
        flags["trusted_gateways"] = args.trusted_gateways
    if args.scope:
        flags["required_scopes"] = args.scope
    try:
        if args.tool_scope:
            flags["tool_scopes"] = _rules(args.tool_scope, "--tool-scope")
        service = GatewayService.from_env(**{name: value for name, value in flags.items() if value is not None})
    except (TypeError, ValueError) as exc:
        problem = str(exc).removeprefix("GatewayService: ")
        for flag, variable in (("--gateway", "MCP_AUTH_GATEWAY"), ("--resource", "MCP_AUTH_RESOURCE")):
            problem = problem.replace(f"{variable} is required", f"{flag} (or {variable}) is required")
        return _fail("gateway", problem)
    try:
        import uvicorn
    except ImportError:
        return _fail("gateway", "needs uvicorn: pip install 'mcp-oauth-middleware[gateway]'")
    level = args.log_level or os.environ.get("MCP_AUTH_LOG_LEVEL", "info").strip().lower()
    if level not in LOG_LEVELS:
        return _fail("gateway", f"MCP_AUTH_LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    if not _port_free(args.host, args.port):
        return _fail("gateway", f"port {args.port} on {args.host} is in use; choose another with --port", 1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mcp_auth_middleware").setLevel(LOG_LEVELS[level])  # not the libraries' INFO lines
    options = service.options
    print(
        f"authorization service for {service.config.resource.url} ({options.gateway}) on "
        f"http://{args.host}:{args.port}{options.check_path}; subrequests only from "
        f"{' '.join(options.trusted_gateways)}; {service.config.scopes.describe()}; without MCP headers: "
        f"{options.without_mcp_headers}; log level {level}",
        flush=True,
    )
    # No proxy headers: the service trusts the gateway by the peer address, which uvicorn would
    # otherwise replace with the client's from X-Forwarded-For.
    uvicorn.run(service, host=args.host, port=args.port, proxy_headers=False, lifespan="on", log_level="warning")
    return 0


def _examples() -> int:
    """The example servers installed with the package (a source tree's `examples/` when run
    from one), and the command that runs each against the demo's authorization server."""
    here = Path(__file__).resolve().parent
    folder = next((f for f in (here / "examples", here.parents[1] / "examples") if f.is_dir()), None)
    if folder is None:
        return _fail("examples", "the examples are not installed with this copy of the package", 1)
    print(f"The examples are in {folder}. With `mcp-oauth-middleware demo` running in another terminal:\n")
    for script in sorted(folder.glob("[!_]*.py")):
        summary = (ast.get_docstring(ast.parse(script.read_text())) or "").splitlines()[0]
        print(f"  {sys.executable} {script}\n      {summary}")
    return 0


def _port_free(host: str, port: int) -> bool:
    """Whether uvicorn can listen on the port: with SO_REUSEADDR, as uvicorn binds, so that the
    connections a demo stopped a moment ago left in TIME_WAIT do not count as "in use"."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


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


async def _discover(url: str, *, allow_http: bool = False) -> int:
    """The authorization server's metadata, from its issuer; given an MCP server's URL, first
    its protected-resource metadata (RFC 9728 §3), as MCP clients find their way."""
    from .discovery import discover_authorization_server, discover_resource
    from .errors import AuthError, ConfigurationError

    try:
        allow_http = allow_http or _env_flag("MCP_AUTH_ALLOW_HTTP")
        check_fetch_url(url, allow_http=allow_http)
        try:
            document = await discover_authorization_server(url, allow_http=allow_http)
        except ConfigurationError as not_an_issuer:
            resource = await discover_resource(url, allow_http=allow_http)
            if resource is None:
                raise not_an_issuer from None
            servers = resource.get("authorization_servers")
            if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
                return _fail("discover", f"{url} is a protected resource whose metadata names no authorization server")
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
        return _fail("discover", str(exc))
    except AuthError as exc:
        return _fail("discover", f"discovery failed: {exc.detail or exc.description}", 1)
    print(json.dumps(document, indent=2))
    problems = readiness_problems(document)
    for problem in problems:
        print(f"missing: {problem}", file=sys.stderr)
    print(
        "note: support for resource indicators (RFC 8707), which MCP clients send, is not visible in metadata; "
        "`check` with a real token shows whether tokens carry the resource as audience",
        file=sys.stderr,
    )
    return 1 if problems else 0


def _env_flag(name: str) -> bool:
    return bool(flag(name, os.environ.get(name)))


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
    from starlette.types import Message, Receive, Scope, Send

    from .errors import ConfigurationError
    from .middleware import MCPAuthMiddleware

    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["auth"] = scope["state"]["auth"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    try:
        allow_http = args.allow_http or _env_flag("MCP_AUTH_ALLOW_HTTP")
    except ValueError as exc:
        print(f"INVALID CONFIGURATION  {exc}", file=sys.stderr)
        return 2
    try:
        rules = {
            "tool_scopes": _rules(args.tool_scope, "--tool-scope"),
            "prompt_scopes": _rules(args.prompt_scope, "--prompt-scope"),
            "resource_scopes": _rules(args.resource_scope, "--resource-scope"),
        }
    except ValueError as exc:
        print(f"INVALID CONFIGURATION  {exc}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"token_validation": args.token_validation, "allow_http": allow_http, **rules}
    if args.token_validation != "jwt":
        options |= {
            "client_id": args.client_id,
            "client_secret": args.client_secret or os.environ.get("MCP_AUTH_CLIENT_SECRET"),
        }
    own_validator = bool(args.audience or args.no_audience or args.allowed_client or args.required_claim)
    if own_validator and args.token_validation != "jwt":
        print(
            "INVALID CONFIGURATION  --audience, --no-audience, --allowed-client and --required-claim are for "
            "--token-validation jwt",
            file=sys.stderr,
        )
        return 2
    try:
        if own_validator:
            options["validator"] = _audience_validator(args, allow_http)
            options.pop("token_validation")
        middleware = MCPAuthMiddleware(
            app,
            resource=args.resource,
            **({} if own_validator else {"issuer": args.issuer, "jwks_uri": args.jwks_uri}),
            authorization_servers=[args.issuer],
            required_scopes=args.scope,
            **options,
        )
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

    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
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

    from .discovery import Discovery
    from .validators import JWTValidator

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


def _rules(values: list[str], flag: str) -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for value in values:
        name, sep, scopes = value.rpartition("=")
        if not sep or not name or not scopes:
            raise ValueError(f"{flag} {value!r}: write NAME=SCOPE (several scopes: NAME=a,b)")
        rules.setdefault(name, []).extend(scopes.replace(",", " ").split())
    return rules


async def _check_lists(args: argparse.Namespace, rules: Any) -> int:
    """What the running server lists, and the rules that name nothing in it: exit 1 if any."""
    from .inventory import ListingFailedError, check_lists

    try:
        names, problems = await check_lists(args.resource, args.token, rules, strict=args.strict_rules)
    except ImportError as exc:
        return _fail("check", f"--lists needs {exc.name or 'the MCP SDK'}: pip install 'mcp-oauth-middleware[mcp]'")
    except ListingFailedError as exc:
        return _fail("check", f"could not list {args.resource}: {exc}", 3)
    for method, listed in names.items():
        print(f"{method}: {', '.join(listed) if listed else '(none)'}")
    for problem in problems:
        print(f"RULE   {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
