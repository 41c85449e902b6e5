"""The broker: an authorization server of the MCP server's own, in front of a provider MCP clients
cannot use directly (Entra ID, Google, Okta, Cognito, GitHub: no client registration, no RFC 8707
`resource`, or tokens no one else can verify). MCP clients register with it and sign in through
it; it sends the user on to the provider with one confidential client, asks consent per client,
and issues its own short-lived, audience-bound tokens (docs/broker.md).

    broker = Broker.of("https://mcp.example.com/oauth", providers.entra(...), resources=..., secrets=...)
    app = MCPAuthMiddleware(mcp.http_app(), resource="https://mcp.example.com/mcp", broker=broker)

Modules, one role each: `authorization_server` (a sign-in, top to bottom), `client_endpoints`
(token, registration, revocation), `answers` (what every endpoint answers with), `settings` (its
options), `clients` (pre-registered, RFC 7591, Client ID Metadata Documents; redirect URIs),
`consent` (the page and the browser binding), `upstream` (the leg to the provider) and
`providers` (the presets), `signing_keys` (rotating, shared), `refresh_tokens` (rotation with
reuse detection), `provider_tokens` (the provider's tokens, sealed, for tools), `sealing`,
`storage` (SQLite or Redis/Valkey)."""

from .authorization_server import Broker
from .clients import BrokerClient, RegistrationPolicy
from .providers import Provider
from .settings import BrokerSettings
from .upstream import ProviderError

__all__ = ["Broker", "BrokerClient", "BrokerSettings", "Provider", "ProviderError", "RegistrationPolicy"]
