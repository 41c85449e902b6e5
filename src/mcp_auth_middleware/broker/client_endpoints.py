"""What MCP clients call without a browser: the token endpoint (RFC 6749 §3.2: a code, once, by
its client, with its PKCE verifier; or a refresh token, rotated), RFC 7591 registration and
RFC 7009 revocation. Access tokens are RFC 9068 JWTs signed by the broker's current key, their
`aud` the resource (RFC 8707), their `sid` the refresh-token family of the sign-in."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..body import read_body
from ..errors import BodyTooLargeError
from .answers import MAX_FORM, Refusal, ToClient, read_form, resources_for, scopes_for
from .clients import BrokerClient, Clients
from .refresh_tokens import RefreshTokens
from .settings import BrokerSettings
from .signing_keys import ALGORITHM, SigningKeys
from .storage import Record, Records, hashed_key, until

__all__ = ["ClientEndpoints", "code_key"]

logger = logging.getLogger("mcp_auth_middleware.broker")

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1


class ClientEndpoints:
    """`token`, `register` and `revoke`: what clients call, answered in JSON. `forget(grant_id)`
    drops the provider's tokens of a sign-in that ends."""

    def __init__(
        self,
        settings: BrokerSettings,
        records: Records,
        clients: Clients,
        keys: SigningKeys,
        refresh_tokens: RefreshTokens,
        forget: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings, self.issuer, self.records, self.clients = settings, settings.issuer, records, clients
        self.keys, self.refresh_tokens, self.forget = keys, refresh_tokens, forget

    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        if form is None:
            raise Refusal("invalid_request", "a form body (application/x-www-form-urlencoded), each parameter once")
        client = await self._authenticated_client(request, form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            claims, refresh_token = await self._from_code(client, form)
        elif grant_type == "refresh_token":
            claims, refresh_token = await self._from_refresh_token(client, form)
        else:
            raise Refusal("unsupported_grant_type", "authorization_code or refresh_token")
        access_token = await self._access_token(claims)
        answer = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_lifetime,
            "refresh_token": refresh_token,
            "scope": claims["scope"],
        }
        return JSONResponse(answer, headers={"cache-control": "no-store", "pragma": "no-cache"})

    async def _authenticated_client(self, request: Request, form: Mapping[str, str]) -> BrokerClient:
        """RFC 6749 §2.3: a confidential client proves its secret; a public one names itself."""
        if len(request.headers.getlist("authorization")) > 1:  # which one would a proxy have checked?
            raise Refusal("invalid_request", "the Authorization header is repeated")
        client_id, secret = extract_basic_authorization(request.headers)  # RFC 6749 §2.3.1
        if client_id is None:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        elif form.get("client_id") not in (None, client_id):
            raise Refusal("invalid_request", "client_id differs from the Basic credentials")
        try:
            client = await self.clients.find(client_id)
        except OAuth2Error as exc:  # unknown, or its metadata document refused
            raise Refusal("invalid_client", str(exc.description or "unknown client"), 401) from None
        if client.secret_hash is None:
            if secret is not None:
                raise Refusal("invalid_client", "a public client has no secret", 401)
        elif not client.secret_matches(secret):
            raise Refusal("invalid_client", "client authentication failed", 401)
        await self.clients.keep(client)
        return client

    async def _from_code(self, client: BrokerClient, form: Mapping[str, str]) -> tuple[dict[str, Any], str]:
        code, verifier = form.get("code", ""), form.get("code_verifier", "")

        def use(old: Record | None) -> tuple[Record | None, tuple[str, Record | None]]:
            if old is None:
                return None, ("unknown", None)
            if old["used"]:
                return old, ("used", old)
            return old | {"used": True}, ("fresh", old)  # spent whoever presents it

        outcome, record = await self.records.update(code_key(code), use, until) if code else ("unknown", None)
        if outcome == "used" and record is not None:
            # RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
            if record.get("family"):
                await self._revoke_family(record["family"])
            raise Refusal("invalid_grant", "the code was already used")
        if record is None:
            raise Refusal("invalid_grant", "unknown or expired code")
        if not hmac.compare_digest(record["client_id"], client.client_id):
            raise Refusal("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != record["redirect_uri"]:
            raise Refusal("invalid_grant", "redirect_uri differs from the authorization request's")
        if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            create_s256_code_challenge(verifier), record["challenge"]
        ):
            raise Refusal("invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
        resources = self._token_resources(form, record["resources"])
        grant = {k: record[k] for k in ("client_id", "sub", "scopes", "resources", "grant_id")}
        refresh_token = await self.refresh_tokens.issue(grant)
        family = RefreshTokens.family_of(refresh_token)

        def note_family(old: Record | None) -> tuple[Record | None, None]:
            return (None if old is None else old | {"family": family}), None

        await self.records.update(code_key(code), note_family, until)
        return self._claims(grant, record["scopes"], resources, family), refresh_token

    async def _from_refresh_token(self, client: BrokerClient, form: Mapping[str, str]) -> tuple[dict[str, Any], str]:
        rotation = await self.refresh_tokens.rotate(form.get("refresh_token", ""), client.client_id)
        if rotation.token is None or rotation.grant is None:
            logger.info("refresh refused for client %s: %s", client.client_id, rotation.problem)
            raise Refusal("invalid_grant", "the refresh token is not valid")
        grant = rotation.grant
        try:
            scopes = (
                scopes_for(self.settings, form.get("scope"), grant["scopes"]) if form.get("scope") else grant["scopes"]
            )
        except ToClient as exc:
            raise Refusal(exc.error, exc.description) from None
        resources = self._token_resources(form, grant["resources"])
        return self._claims(grant, scopes, resources, RefreshTokens.family_of(rotation.token)), rotation.token

    def _token_resources(self, form: Mapping[str, str], granted: list[str]) -> list[str]:
        requested = [form["resource"]] if form.get("resource") else []
        try:
            return resources_for(self.settings, requested, granted)
        except ToClient as exc:
            raise Refusal(exc.error, exc.description) from None

    def _claims(self, grant: Mapping[str, Any], scopes: list[str], resources: list[str], family: str) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": grant["sub"],
            "aud": resources[0] if len(resources) == 1 else resources,
            "client_id": grant["client_id"],
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + self.settings.access_token_lifetime,
            "jti": str(uuid.uuid4()),
            "sid": family,
        }

    async def _access_token(self, claims: dict[str, Any]) -> str:
        """RFC 9068: `typ: at+jwt`, signed by the current key."""
        key = await self.keys.signing_key()
        header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(header, claims, key, algorithms=[ALGORITHM])

    async def register(self, request: Request) -> Response:
        try:
            body, _ = await read_body(request.receive, MAX_FORM)
            metadata = json.loads(body or b"null")
        except (BodyTooLargeError, ValueError):
            metadata = None
        if not isinstance(metadata, dict):
            raise Refusal("invalid_client_metadata", "the body must be a JSON object")
        try:
            info = await self.clients.register(metadata)
        except OAuth2Error as exc:
            raise Refusal(exc.error, str(exc.description or "")) from None
        return JSONResponse(info, status_code=201, headers={"cache-control": "no-store"})

    async def revoke(self, request: Request) -> Response:
        form = await read_form(request)
        if form is None or not form.get("token"):
            raise Refusal("invalid_request", "token is required")
        client = await self._authenticated_client(request, form)
        token = form["token"]
        if token.count(".") == 2:  # an access token: its family (sid) goes, if it is ours and its client's
            family = await self._family_of_access_token(token, client.client_id)
            if family:
                await self._revoke_family(family)
        else:
            grant = await self.refresh_tokens.revoke(token, client.client_id)
            if grant is not None:
                await self.forget(grant["grant_id"])
        return Response(status_code=200, headers={"cache-control": "no-store"})  # RFC 7009 §2.2

    async def _family_of_access_token(self, token: str, client_id: str) -> str | None:
        keys = await self.keys.keys_for(None, "EC")
        for key in keys:
            try:
                claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
            except (JoseError, ValueError):  # not ours, or not with this key: nothing to revoke
                continue
            if claims.get("iss") == self.issuer and claims.get("client_id") == client_id:
                return str(claims.get("sid") or "") or None
        return None

    async def _revoke_family(self, family: str) -> None:
        grant = await self.refresh_tokens.revoke_family(family)
        if grant is not None:
            await self.forget(grant["grant_id"])


def code_key(code: str) -> str:
    return hashed_key("code", code)
