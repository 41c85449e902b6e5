"""What the broker is told, checked once at construction (the options live here, the endpoints in
`authorization_server`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..values import LOOPBACK_HOSTS, word_list
from .clients import BrokerClient, RegistrationPolicy
from .providers import Provider

__all__ = ["BrokerSettings"]


@dataclass(frozen=True)
class BrokerSettings:
    """`issuer`: the broker's URL (https; http only on loopback, for development). `resources`:
    the MCP servers (RFC 8707 resource URIs) its tokens may be for, the first the default.
    `secrets`: newest first, at least 32 characters each; they seal the provider's tokens and
    the signing keys, and bind consent to the browser. `storage`: a SQLite path (one machine,
    survives a restart) or a `redis://`/`valkey://` URL (replicas)."""

    issuer: str
    provider: Provider
    resources: tuple[str, ...]
    secrets: tuple[str, ...] = field(repr=False)
    storage: str = "mcp-broker.db"
    scopes_supported: tuple[str, ...] = ("mcp",)
    default_scopes: tuple[str, ...] | None = None
    clients: tuple[BrokerClient, ...] = ()
    registration: RegistrationPolicy = field(default_factory=RegistrationPolicy)
    access_token_lifetime: int = 300
    refresh_token_lifetime: float = 30 * 86400
    refresh_grace: float = 10.0
    consent_lifetime: float = 30 * 86400
    sign_in_lifetime: float = 600
    key_rotation: float = 7 * 86400
    #: Client metadata documents on loopback http (tests and development only).
    development: bool = False

    def __post_init__(self) -> None:
        issuer = self.issuer.rstrip("/")
        parts = urlsplit(issuer)
        loopback = parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
        if not (parts.scheme == "https" or loopback) or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"issuer {self.issuer!r}: an https URL without query or fragment (RFC 8414 §2)")
        object.__setattr__(self, "issuer", issuer)
        for name in ("resources", "secrets", "scopes_supported"):
            value = getattr(self, name)
            listed = word_list(value) if name == "scopes_supported" else [value] if isinstance(value, str) else value
            object.__setattr__(self, name, tuple(listed))  # one string is one value, not its characters
        if not self.resources:
            raise ValueError("resources: the MCP server URLs the broker's tokens may be for (RFC 8707)")
        for resource in self.resources:
            r = urlsplit(resource)
            if r.scheme not in ("https", "http") or not r.netloc or r.fragment:
                raise ValueError(f"resource {resource!r}: an absolute URL without fragment (RFC 8707 §2)")
        defaults = self.scopes_supported[:1] if self.default_scopes is None else tuple(word_list(self.default_scopes))
        object.__setattr__(self, "default_scopes", defaults)
        if not 1 <= self.access_token_lifetime <= 3600:
            raise ValueError("access_token_lifetime: between 1 and 3600 seconds (short-lived, RFC 9700 §2.2.2)")
        if not 0 <= self.refresh_grace <= 60:
            raise ValueError("refresh_grace: between 0 and 60 seconds")

    @property
    def path(self) -> str:
        """The issuer's path ('' at the root): the endpoints live under it."""
        return urlsplit(self.issuer).path.rstrip("/")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def of(cls, issuer: str, provider: Provider, resources: str | Iterable[str], secrets: str | Iterable[str],
           **options: object) -> BrokerSettings:  # fmt: skip
        listed = (resources,) if isinstance(resources, str) else tuple(resources)
        keys = (secrets,) if isinstance(secrets, str) else tuple(secrets)
        return cls(issuer, provider, listed, keys, **options)  # type: ignore[arg-type]
