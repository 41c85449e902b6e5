"""Several trusted issuers: each JWT goes to the validator of its issuer.

A JWT is routed by its `iss` claim, read before verification, but only among the configured
issuers: an unknown `iss` is refused at once and never causes a key or discovery fetch, and
the chosen validator still checks `iss` exactly after verifying the signature with that
issuer's own keys. Each issuer keeps its own key cache and fetch state, so one issuer's outage
leaves the others alone. Tokens that are not JWTs go to the one `opaque` validator, if any.

Identity providers with one issuer per tenant (Entra ID, Auth0 organisations on custom
domains, Keycloak realms) are covered by `TenantIssuers`: an issuer template and the tenants
allowed; a tenant's validator is built the first time one of its tokens arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial

from ..discovery import Discovery
from ..errors import InvalidTokenError, mismatch_hint, shown
from ..jose import peek_claims
from ..providers import issuer_advice
from ..values import word_list
from .base import RoutingValidator, TokenValidator, Validator, as_validator
from .fallback import looks_like_jwt
from .jwt import MAX_TOKEN_LENGTH, JWTValidator, encrypted_token_error

__all__ = ["IssuerRouter", "TenantIssuers", "discovered_jwt_validator", "unverified_issuer"]


def unverified_issuer(token: str) -> str | None:
    """The `iss` of a JWT before any verification: only to pick which issuer's keys to try."""
    claims = peek_claims(token)
    iss = claims.get("iss") if claims is not None else None
    return iss if isinstance(iss, str) else None


def discovered_jwt_validator(issuer: str, *, allow_http: bool = False) -> JWTValidator:
    """A validator for `issuer` whose keys are found by discovery (RFC 8414, then OpenID
    Connect), lazily: the default for each of several issuers and for a tenant's issuer."""
    discovery = Discovery(issuer, allow_http=allow_http)
    return JWTValidator(issuer=issuer, allow_http=allow_http, resolve_jwks_uri=partial(discovery.endpoint, "jwks_uri"))


class TenantIssuers:
    """Issuers of the form `template` (with `{tenant}`), for the tenants in `tenants` only.

    TenantIssuers("https://login.microsoftonline.com/{tenant}/v2.0", tenants=["<tenant-id>"])
    """

    def __init__(
        self,
        template: str,
        tenants: str | Iterable[str],
        *,
        validator_for: Callable[[str], TokenValidator] = discovered_jwt_validator,
    ) -> None:
        if template.count("{tenant}") != 1:
            raise ValueError(f"the issuer template needs exactly one {{tenant}}: {template!r}")
        self.template = template
        self.tenants = frozenset(word_list(tenants))
        if not self.tenants:
            raise ValueError("TenantIssuers needs the tenants it allows")
        head, tail = template.split("{tenant}")
        self._pattern = re.compile(re.escape(head) + r"([^/?#]+)" + re.escape(tail))
        self.validator_for = validator_for

    @property
    def issuers(self) -> list[str]:
        """Every issuer allowed, for the metadata's `authorization_servers`."""
        return [self.template.replace("{tenant}", tenant) for tenant in sorted(self.tenants)]

    def allows(self, issuer: str) -> bool:
        return self.tenant_of(issuer) in self.tenants

    def tenant_of(self, issuer: str) -> str | None:
        """The tenant an issuer of the template's form names (allowed or not)."""
        match = self._pattern.fullmatch(issuer)
        return match.group(1) if match is not None else None


class IssuerRouter(RoutingValidator):
    """A TokenValidator over several issuers (see the module docstring)."""

    def __init__(
        self,
        issuers: Mapping[str, TokenValidator],
        *,
        tenants: TenantIssuers | None = None,
        opaque: TokenValidator | None = None,
        bind: Callable[[Validator], Validator] | None = None,
    ) -> None:
        if not issuers and tenants is None:
            raise ValueError("IssuerRouter needs at least one issuer")
        self.validators: dict[str, Validator] = {iss: as_validator(v) for iss, v in issuers.items()}
        self.tenants = tenants
        self.opaque = as_validator(opaque) if opaque is not None else None
        # What a tenant's validator, built on its first token, goes through (see rebuilt).
        self._bind: Callable[[Validator], Validator] = bind or (lambda validator: validator)
        super().__init__((*self.validators.values(), *((self.opaque,) if self.opaque is not None else ())))

    @property
    def issuers(self) -> tuple[str, ...]:
        return (*self.validators, *(self.tenants.issuers if self.tenants else ()))

    def rebuilt(self, bind: Callable[[Validator], Validator]) -> IssuerRouter:
        previous = self._bind
        return IssuerRouter(
            {iss: bind(v) for iss, v in self.validators.items()},
            tenants=self.tenants,
            opaque=bind(self.opaque) if self.opaque is not None else None,
            bind=lambda validator: bind(previous(validator)),
        )

    def route(self, token: str) -> Validator:
        if not looks_like_jwt(token):
            if self.opaque is None:
                encrypted = encrypted_token_error(token.encode("ascii", "replace"), MAX_TOKEN_LENGTH, None)
                raise encrypted or InvalidTokenError("The access token is malformed")
            return self.opaque
        issuer = unverified_issuer(token)
        if issuer is None:
            raise InvalidTokenError("The access token is malformed")
        validator = self.validators.get(issuer)
        if validator is None and self.tenants is not None and self.tenants.allows(issuer):
            # A tenant's first token: its validator (and its own key cache) from now on.
            validator = self.validators[issuer] = self._bind(as_validator(self.tenants.validator_for(issuer)))
            self.add_part(validator)
        if validator is None:
            raise InvalidTokenError(
                "The access token issuer is not trusted",
                detail=f"issuer {shown(issuer)} is not one of the configured issuers{self._advice(issuer)}",
                mismatch=True,
            )
        return validator

    def _advice(self, issuer: str) -> str:
        """For the log: a tenant not allowed, or the configured issuer it resembles."""
        tenant = self.tenants.tenant_of(issuer) if self.tenants is not None else None
        if tenant is not None:
            return f"; tenant {shown(tenant)} is not in tenants= (add it if its users may call this server)"
        for known in (*self.validators, *(self.tenants.issuers[:1] if self.tenants is not None else ())):
            if advice := mismatch_hint(known, issuer) or issuer_advice(known, issuer, {}):
                return advice
        return ""

    def checks_locally(self, token: str) -> bool:
        try:
            validator = self.route(token)
        except InvalidTokenError:
            return True  # refused without any remote call
        return validator.checks_locally(token)
