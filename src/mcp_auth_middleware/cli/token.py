"""`mcp-oauth-middleware token --resource URL --scope S`: an access token from a local
authorization server (the demo's, or a `LocalAuthorizationServer` of your own) for any
resource and scopes, by the same OAuth flow an MCP client runs: registration (RFC 7591), an
authorization request with PKCE (S256) and `resource` (RFC 8707), the issuer checked in the
answer (RFC 9207), the code exchanged at the token endpoint.

The local authorization server approves every sign-in without asking, so the command talks
only to one on loopback. It prints the token alone on stdout (`TOKEN=$(mcp-oauth-middleware
token ...)`), and what it got on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..values import is_loopback
from ._common import fail

#: Where the authorization server is asked to send the browser: never contacted, the code is
#: read from the redirect itself.
REDIRECT_URI = "http://127.0.0.1:1/callback"


def add_parser(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="get an access token from the demo's (or your local) authorization server for a resource and scopes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument("--resource", required=True, help="the resource the token is for (its audience), RFC 8707")
    token.add_argument(
        "--scope", action="append", default=[], help="a scope to ask for (repeatable; default: the server's default)"
    )
    token.add_argument(
        "--issuer",
        default="http://127.0.0.1:9000",
        help="the local authorization server (default http://127.0.0.1:9000, the demo's)",
    )
    token.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not is_loopback(args.issuer):
        return fail(
            "token",
            f"--issuer {args.issuer} is not on loopback: this command signs in without a person, which only the "
            "local authorization server allows (mcp-oauth-middleware demo, LocalAuthorizationServer)",
        )
    try:
        token, granted = asyncio.run(sign_in(args.issuer.rstrip("/"), args.resource, args.scope))
    except SignInError as exc:
        return fail("token", str(exc), 1)
    print(f"a token for {args.resource}, scope {granted!r}, from {args.issuer}", file=sys.stderr)
    print(token)
    return 0


class SignInError(Exception):
    """A step of the flow failed: the message says which, and what the server answered."""


async def sign_in(issuer: str, resource: str, scopes: list[str]) -> tuple[str, str]:
    """The access token and its scope, by the authorization code flow with PKCE."""
    import httpx2
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
        try:
            metadata = (await http.get(f"{issuer}/.well-known/oauth-authorization-server")).json()
            if metadata.get("issuer") != issuer:
                raise SignInError(f"{issuer} names itself {metadata.get('issuer')!r}: use that as --issuer")
            registered = await http.post(
                metadata["registration_endpoint"],
                json={
                    "redirect_uris": [REDIRECT_URI],
                    "client_name": "mcp-oauth-middleware token",
                    "token_endpoint_auth_method": "none",
                },
            )
            client_id = _answer(registered, "registration")["client_id"]
            verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
            query = {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
                "state": state,
                "resource": resource,
            } | ({"scope": " ".join(scopes)} if scopes else {})
            authorized = await http.get(metadata["authorization_endpoint"], params=query)
            if authorized.status_code != 302:
                raise SignInError(f"the authorization request was refused: {_said(authorized)}")
            answer = {k: v[0] for k, v in parse_qs(urlsplit(authorized.headers["location"]).query).items()}
            if "error" in answer:
                raise SignInError(f"the authorization request was refused: {answer['error']} "
                                  f"{answer.get('error_description', '')}".strip())  # fmt: skip
            if answer.get("state") != state or answer.get("iss", issuer) != issuer:
                raise SignInError("the authorization response is for another request (state or iss differ)")
            exchanged = await http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": answer["code"],
                    "redirect_uri": REDIRECT_URI,
                    "client_id": client_id,
                    "code_verifier": verifier,
                    "resource": resource,
                },
            )
            tokens = _answer(exchanged, "token request")
        except httpx2.HTTPError as exc:
            raise SignInError(f"could not reach {issuer}: {exc} (is `mcp-oauth-middleware demo` running?)") from None
        except (ValueError, KeyError) as exc:
            raise SignInError(f"{issuer} is not an authorization server this command knows ({exc!r} missing)") from None
    return tokens["access_token"], tokens.get("scope", " ".join(scopes))


def _answer(response: Any, step: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise SignInError(f"the {step} was refused: {_said(response)}")
    document: dict[str, Any] = response.json()
    return document


def _said(response: Any) -> str:
    try:
        document = response.json()
        return f"HTTP {response.status_code} {document.get('error')}: {document.get('error_description', '')}".strip()
    except ValueError:
        return f"HTTP {response.status_code}"
