"""Authlib's server classes on Starlette: requests read asynchronously (bodies bounded), the
Authlib `AuthorizationServer` subclass that stores into the local server, its responses."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer as AuthlibServer
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonPayload, JsonRequest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..body import read_body
from ..errors import BodyTooLargeError
from .models import AuthorizationStore, Client, Token

__all__ = ["MAX_BODY", "OAuthRequest", "Server", "StaticJson", "owner_of", "quiet_authlib_logs", "read_oauth_request"]


MAX_BODY = 64 * 1024


class OAuthRequest(OAuth2Request):  # type: ignore[misc]
    """Authlib's request, from a Starlette request whose form was read beforehand."""

    def __init__(self, request: Request, form: Mapping[str, str], datalist: dict[str, list[str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = dict(form)
        self.payload = BasicOAuth2Payload({**self._args, **self._form})
        self.payload._datalist = datalist
        self.resource: list[str] = []

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def owner_of(component: Any) -> AuthorizationStore:
    """The store behind an Authlib grant or endpoint (Authlib is untyped)."""
    owner: AuthorizationStore = component.server.owner
    return owner


class Server(AuthlibServer):  # type: ignore[misc]
    def __init__(self, owner: AuthorizationStore) -> None:
        super().__init__(scopes_supported=owner.scopes_supported)
        self.owner = owner

    def query_client(self, client_id: str) -> Client | None:
        return self.owner.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuthRequest) -> None:
        user = request.user
        rotated = request.refresh_token  # the Token a refresh grant rotates out, if any
        self.owner.save_token(
            token,
            client_id=request.client.client_id,
            sub=user.sub if user else request.client.client_id,
            resource=request.resource,
            code=request.authorization_code,
            family=rotated.family if isinstance(rotated, Token) else None,
        )

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # built by the route handlers, which read the body asynchronously

    def create_json_request(self, request: Any) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Iterable[tuple[str, str]]) -> Response:
        header_map = dict(headers)
        if isinstance(body, dict):
            header_map.pop("Content-Type", None)
            return JSONResponse(body, status_code=status, headers=header_map)
        return Response(body or b"", status_code=status, headers=header_map)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class StaticJson(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


#: Body parameters that authenticate a client (RFC 6749 §2.3.1, RFC 7523 §2.2).
_CLIENT_CREDENTIALS = ("client_secret", "client_assertion")


async def read_oauth_request(request: Request, *, form: bool = False) -> OAuthRequest:
    """The request's parameters: from the query string at /authorize, from the form body only
    at the token and revocation endpoints."""
    values: dict[str, str] = {}
    datalist: dict[str, list[str]] = {}
    if form:
        if request.url.query:
            # RFC 6749 §2.3.1, §3.2: credentials (client_secret, code_verifier, refresh_token)
            # never belong in a URI, where logs and proxies keep them.
            raise InvalidRequestError(description="Parameters belong in the form body, not in the URL")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise InvalidRequestError(description="Use application/x-www-form-urlencoded")
        try:
            body, _ = await read_body(request.receive, MAX_BODY)  # bounded: never buffer a huge body
        except BodyTooLargeError as exc:
            raise InvalidRequestError(description="The request body is too large") from exc
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            datalist.setdefault(key, []).append(value)
    for key, value in request.query_params.multi_items():
        datalist.setdefault(key, []).append(value)
    for key, value_list in datalist.items():
        # RFC 6749 §3.1: parameters must not repeat (resource, RFC 8707, may).
        if len(value_list) > 1 and key != "resource":
            raise InvalidRequestError(description="A parameter is repeated")
        values[key] = value_list[0]
    methods = sum(key in values for key in _CLIENT_CREDENTIALS)
    methods += request.headers.get("authorization", "")[:6].lower() == "basic "
    if methods > 1:
        # RFC 6749 §2.3: one client authentication method per request; §5.2: else invalid_request.
        raise InvalidRequestError(description="The request uses more than one client authentication method")
    return OAuthRequest(request, values if form else {}, datalist)


class _Redacted(logging.Filter):
    """Authlib's DEBUG lines log issued tokens and clients with %r ("Issue token {...} to
    Client(...)"): their values are replaced, the message stays (docs/security.md: no token
    or secret in any log line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = {key: "[redacted]" for key in record.args}
        elif record.args:
            record.args = tuple("[redacted]" for _ in record.args)
        return True


_REDACTED = _Redacted()


def quiet_authlib_logs() -> None:
    """Put the redaction on every Authlib logger (a logger's filters are not inherited by its
    children, so each one gets it)."""
    for name in list(logging.root.manager.loggerDict):
        if name == "authlib" or name.startswith("authlib."):
            logger = logging.getLogger(name)
            if _REDACTED not in logger.filters:
                logger.addFilter(_REDACTED)
