"""The MCP clients the broker knows: pre-registered ones (configured), registered ones (RFC 7591,
kept in the records, their secrets only hashed), and those whose `client_id` is the URL of their
metadata document (MCP authorization, Client ID Metadata Documents; fetched with the address
guard of `server.client_metadata`). Redirect URIs match exactly, except a loopback one, which
matches on any port (RFC 8252 §7.3: a native client listens on whatever port is free)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError

from ..challenge import safe_description
from ..server.client_metadata import ClientMetadataDocuments
from ..server.registration import check_redirect_uris
from ..values import LOOPBACK_HOSTS
from .storage import Record, Records

__all__ = ["BrokerClient", "Clients", "RegistrationPolicy", "redirect_uri_matches"]

_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class BrokerClient:
    """One MCP client. `secret_hash` is the SHA-256 of its secret (None: a public client, PKCE only)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    client_name: str | None = None
    secret_hash: str | None = field(default=None, repr=False)
    token_endpoint_auth_method: str = "none"
    #: "preregistered", "registered" or "document": the consent page says which.
    kind: str = "registered"

    @classmethod
    def preregistered(
        cls,
        client_id: str,
        redirect_uris: Iterable[str],
        *,
        client_secret: str | None = None,
        client_name: str | None = None,
    ) -> BrokerClient:
        """A client the operator configures (a secret makes it confidential: `client_secret_basic`)."""
        uris = tuple(check_redirect_uris(list(redirect_uris)))
        method = "client_secret_basic" if client_secret else "none"
        return cls(
            client_id, uris, client_name, _hash(client_secret) if client_secret else None, method, "preregistered"
        )

    def allows_redirect(self, uri: str) -> bool:
        return any(redirect_uri_matches(registered, uri) for registered in self.redirect_uris)

    def secret_matches(self, secret: str | None) -> bool:
        if self.secret_hash is None or secret is None:
            return False
        return hmac.compare_digest(self.secret_hash, _hash(secret))


def redirect_uri_matches(registered: str, presented: str) -> bool:
    """Exact match; for `http` on loopback, the same host, path and query on any port (RFC 8252
    §7.3). `localhost` counts as loopback too: clients such as Claude Code register it."""
    if registered == presented:
        return True
    a, b = urlsplit(registered), urlsplit(presented)
    loopback = a.scheme == "http" and a.hostname in LOOPBACK_HOSTS
    try:
        return (
            loopback
            and b.scheme == "http"
            and a.hostname == b.hostname
            and (a.path, a.query) == (b.path, b.query)
            and not b.fragment
            and b.username is None
            and b.password is None
            and b.port is not None
        )
    except ValueError:  # a port out of range
        return False


@dataclass(frozen=True)
class RegistrationPolicy:
    """Who may register (RFC 7591 §3): `open` to any client (what MCP clients without metadata
    documents need), `loopback` to native clients only (redirect URIs on 127.0.0.1/[::1]),
    `closed` to nobody. `redirect_hosts`: if given, the only hosts a registered client may send
    users back to (besides loopback with `loopback`)."""

    mode: Literal["open", "loopback", "closed"] = "open"
    redirect_hosts: frozenset[str] | None = None
    lifetime: float = 90 * 86400  # a registration unused this long is forgotten

    def check(self, redirect_uris: list[str]) -> None:
        if self.mode == "closed":
            raise InvalidClientMetadataError(description="registration is closed on this server")
        for uri in redirect_uris:
            host = urlsplit(uri).hostname or ""
            loopback = host in LOOPBACK_HOSTS
            if self.mode == "loopback" and not loopback:
                raise InvalidRedirectURIError(description="only loopback redirect URIs may be registered here")
            if self.redirect_hosts is not None and not loopback and host not in self.redirect_hosts:
                raise InvalidRedirectURIError(description=f"redirect URIs to {safe_description(host)} are not allowed")


class Clients:
    """Finds a client by id (`await clients.find(client_id)`) and registers new ones."""

    def __init__(
        self,
        records: Records,
        documents: ClientMetadataDocuments,
        preregistered: Iterable[BrokerClient] = (),
        policy: RegistrationPolicy | None = None,
    ) -> None:
        self.records, self.documents = records, documents
        self.preregistered: Mapping[str, BrokerClient] = {c.client_id: c for c in preregistered}
        self.policy = policy or RegistrationPolicy()

    async def find(self, client_id: str) -> BrokerClient:
        """The client, or InvalidClientError (a reason a user can read: it is shown, not redirected)."""
        known = self.preregistered.get(client_id)
        if known is not None:
            return known
        if self.documents.is_document_url(client_id):
            document = await self.documents.metadata(client_id)
            name = document.get("client_name")
            return BrokerClient(
                client_id, tuple(document["redirect_uris"]), name if isinstance(name, str) else None, kind="document"
            )
        record = await self.records.get(_key(client_id)) if len(client_id) <= 64 else None
        if record is None:
            raise InvalidClientError(description="This client is not registered here")
        return BrokerClient(
            client_id,
            tuple(record["redirect_uris"]),
            record.get("client_name"),
            record.get("secret_hash"),
            record["token_endpoint_auth_method"],
        )

    async def keep(self, client: BrokerClient) -> None:
        """A registered client in use stays registered (`lifetime` from its last sign-in or token)."""
        if client.kind != "registered":
            return
        lifetime = self.policy.lifetime

        def extend(old: Record | None) -> tuple[Record | None, None]:
            return (None if old is None else old | {"until": time.time() + lifetime}), None

        await self.records.update(_key(client.client_id), extend, lifetime)

    async def register(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 7591 §3.2.1: the client information for valid metadata, or an error naming the member."""
        redirect_uris = check_redirect_uris(metadata.get("redirect_uris"))
        if not redirect_uris:
            raise InvalidRedirectURIError(description="redirect_uris is required")
        self.policy.check(redirect_uris)
        method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in _AUTH_METHODS:
            raise InvalidClientMetadataError(
                description=f"token_endpoint_auth_method: only {', '.join(_AUTH_METHODS)} are supported"
            )
        for member, allowed in (
            ("grant_types", ("authorization_code", "refresh_token")),
            ("response_types", ("code",)),
        ):
            values = metadata.get(member, [])
            if not isinstance(values, list) or any(v not in allowed for v in values):
                raise InvalidClientMetadataError(description=f"{member}: only {', '.join(allowed)} are supported")
        name = metadata.get("client_name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise InvalidClientMetadataError(description="client_name: a string of at most 200 characters")
        client_id = secrets.token_urlsafe(24)
        secret = secrets.token_urlsafe(32) if method != "none" else None
        record = {
            "redirect_uris": redirect_uris,
            "client_name": name,
            "secret_hash": _hash(secret) if secret else None,
            "token_endpoint_auth_method": method,
            "until": time.time() + self.policy.lifetime,
        }

        def create(old: Record | None) -> tuple[Record | None, None]:
            return record, None

        await self.records.update(_key(client_id), create, self.policy.lifetime)
        info: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "redirect_uris": redirect_uris,
            "grant_types": metadata.get("grant_types") or ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            **({"client_name": name} if name else {}),
        }
        if secret:
            info |= {"client_secret": secret, "client_secret_expires_at": 0}
        return info


def _key(client_id: str) -> str:
    return f"broker:client:{client_id}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
