"""AuthConfig: every option read, checked and given its default once; immutable; from_env."""

from __future__ import annotations

import pytest

from mcp_auth_middleware import AuthConfig, JWTValidator, MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import ISSUER, RESOURCE, asgi_client, bearer, echo_app


def test_values_are_kept_in_one_typed_form() -> None:
    config = AuthConfig(
        resource=RESOURCE,
        issuer=ISSUER,
        required_scopes="mcp read",
        tool_scopes={"delete": "admin"},
        public_paths="/health /static/*",
        trusted_proxies="10.0.0.0/8",
    )
    assert config.required_scopes == frozenset({"mcp", "read"})
    assert config.tool_scopes == {"delete": ("admin",)}
    assert config.public_paths == ("/health", "/static/*")
    assert config.authorization_servers == (ISSUER,)  # the issuer, when none are listed
    assert isinstance(config.validator, JWTValidator)  # the one-line form's validator, built once


def test_immutable() -> None:
    config = AuthConfig(resource=RESOURCE, issuer=ISSUER)
    with pytest.raises(AttributeError, match="immutable"):
        config.resource = "https://elsewhere.example/mcp"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.tool_scopes["x"] = ("y",)  # type: ignore[index]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_body": 0}, "max_body must be a positive number"),
        ({"forwarded_header": "x-real-ip"}, "forwarded_header"),
        ({"token_validation": "magic"}, "token_validation"),
        ({"token_validation": "introspection"}, "client_id"),
        ({"issuer": None}, "issuer="),
        ({"required_scopes": ['a"b']}, "not a valid OAuth scope token"),
    ],
)
def test_what_cannot_work_is_refused_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuthConfig(**{"resource": RESOURCE, "issuer": ISSUER, **options})  # type: ignore[arg-type]


async def test_the_middleware_takes_a_config_or_keywords_not_both(issuer: LocalIssuer) -> None:
    config = AuthConfig(resource=RESOURCE, authorization_servers=[ISSUER], validator=issuer.validator())
    app = MCPAuthMiddleware(echo_app(), config)
    assert app.config is config
    async with asgi_client(app) as client:
        assert (await client.post("/mcp", headers=bearer(issuer.mint_token(audience=RESOURCE)))).status_code == 200
    with pytest.raises(TypeError, match="not both"):
        MCPAuthMiddleware(echo_app(), config, required_scopes="mcp")


def test_from_env_reads_every_variable() -> None:
    config = AuthConfig.from_env(
        {
            "MCP_AUTH_RESOURCE": RESOURCE,
            "MCP_AUTH_ISSUER": ISSUER,
            "MCP_AUTH_REQUIRED_SCOPES": "mcp,read",
            "MCP_AUTH_PUBLIC_PATHS": "/health",
            "MCP_AUTH_ALLOWED_ORIGINS": "https://app.example",
            "MCP_AUTH_CORS_ORIGINS": "",
            "MCP_AUTH_FAILURE_LIMIT": "off",
            "MCP_AUTH_TRUSTED_PROXIES": "10.0.0.0/8",
            "MCP_AUTH_FORWARDED_HEADER": "forwarded",
            "MCP_AUTH_LOG_ALLOWED": "yes",
            "MCP_AUTH_STRICT_STARTUP": "1",
        },
        resource_name="Overridden by a keyword",
    )
    assert config.required_scopes == {"mcp", "read"} and config.public_paths == ("/health",)
    assert config.allowed_origins == ("https://app.example",) and config.cors_origins is None
    assert config.failure_limit is None and config.forwarded_header == "forwarded"
    assert config.log_allowed and config.strict_startup and config.resource_name == "Overridden by a keyword"
    with pytest.raises(ValueError, match="MCP_AUTH_RESOURCE"):
        AuthConfig.from_env({})


def test_several_issuers_from_the_environment() -> None:
    from mcp_auth_middleware import IssuerRouter

    config = AuthConfig.from_env(
        {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUERS": "https://a.example, https://b.example"}
    )
    assert config.authorization_servers == ("https://a.example", "https://b.example")
    assert isinstance(config.validator, IssuerRouter) and config.validator.issuers == list(config.authorization_servers)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MCP_AUTH_DPOP_REQUIRED", "ture"),
        ("MCP_AUTH_STRICT_STARTUP", "ture"),
        ("MCP_AUTH_ALLOW_HTTP", "maybe"),
        ("MCP_AUTH_DPOP", "enabled"),
        ("MCP_AUTH_LOG_ALLOWED", "2"),
    ],
)
def test_a_misspelled_boolean_is_refused_naming_its_variable(variable: str, value: str) -> None:
    """A security switch that cannot be read fails closed: no silent False."""
    environ = {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": ISSUER, variable: value}
    with pytest.raises(ValueError, match=f"{variable}='{value}' is not a boolean"):
        AuthConfig.from_env(environ)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("TRUE", True), (" on ", True), ("no", False), ("", False)]
)
def test_recognised_booleans(value: str, expected: bool) -> None:
    environ = {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": ISSUER, "MCP_AUTH_DPOP_REQUIRED": value}
    assert AuthConfig.from_env(environ).dpop_required is expected


def test_commas_separate_lists_in_keywords_as_in_variables() -> None:
    """One rule for both: spaces or commas."""
    from_keywords = AuthConfig(
        resource=RESOURCE, issuer=ISSUER, required_scopes="mcp,notes:read", public_paths="/health,/docs"
    )
    from_env = AuthConfig.from_env(
        {
            "MCP_AUTH_RESOURCE": RESOURCE,
            "MCP_AUTH_ISSUER": ISSUER,
            "MCP_AUTH_REQUIRED_SCOPES": "mcp,notes:read",
            "MCP_AUTH_PUBLIC_PATHS": "/health,/docs",
        }
    )
    for config in (from_keywords, from_env):
        assert config.required_scopes == {"mcp", "notes:read"}
        assert config.public_paths == ("/health", "/docs")


def test_a_forgotten_resource_is_one_line_naming_the_middleware_and_the_option() -> None:
    with pytest.raises(ValueError, match=r"^MCPAuthMiddleware: `resource` is required: the URL clients use") as raised:
        MCPAuthMiddleware(echo_app(), issuer=ISSUER)  # type: ignore[call-arg]
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_misspelled_option_is_named_with_the_likely_one() -> None:
    with pytest.raises(ValueError, match=r"MCPAuthMiddleware: unknown option 'resouce' \(did you mean 'resource'\?\)"):
        MCPAuthMiddleware(echo_app(), resouce=RESOURCE, issuer=ISSUER)


async def test_the_middleware_form_without_lifespan_answers_503_and_says_why_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    app = Starlette(middleware=[Middleware(MCPAuthMiddleware, issuer=ISSUER)])  # resource forgotten
    with caplog.at_level("ERROR", logger="mcp_auth_middleware"):
        async with asgi_client(app) as client:
            answers = [await client.post("/mcp") for _ in range(3)]
    assert {a.status_code for a in answers} == {503}
    assert answers[0].json()["error"] == "server_misconfigured"
    lines = [r.getMessage() for r in caplog.records if "MCPAuthMiddleware" in r.getMessage()]
    assert lines == [
        "MCPAuthMiddleware: `resource` is required: the URL clients use for this MCP server, "
        'e.g. resource="https://mcp.example.com/mcp" (MCP_AUTH_RESOURCE)'
    ]
