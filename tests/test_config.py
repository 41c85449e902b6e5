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
    assert config.scopes.required == frozenset({"mcp", "read"})
    assert config.scopes.tools == {"delete": frozenset({"admin"})}
    assert config.public_paths == ("/health", "/static/*")
    assert config.guard.trusted_proxies == ("10.0.0.0/8",)
    assert config.authorization_servers == (ISSUER,)  # the issuer, when none are listed
    assert config.validator is None and config.validation.issuer == ISSUER  # the one-line form
    assert isinstance(MCPAuthMiddleware(echo_app(), config).validator, JWTValidator)  # built from it


def test_immutable() -> None:
    config = AuthConfig(resource=RESOURCE, issuer=ISSUER)
    with pytest.raises(AttributeError, match="immutable"):
        config.resource = "https://elsewhere.example/mcp"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.scopes.tools["x"] = frozenset({"y"})  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.limits.max_body = 1  # type: ignore[misc]


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
            "MCP_AUTH_LIST_FILTER": "hide",
            "MCP_AUTH_STRICT_RULES": "true",
        },
        resource_name="Overridden by a keyword",
    )
    assert config.scopes.required == {"mcp", "read"} and config.public_paths == ("/health",)
    assert config.browsers.allowed_origins == ("https://app.example",) and config.browsers.cors_origins is None
    assert config.guard.failure_limit is None and config.guard.forwarded_header == "forwarded"
    assert config.log_allowed and config.strict_startup and config.resource_name == "Overridden by a keyword"
    assert config.scopes.lists == "hide" and config.scopes.strict
    with pytest.raises(ValueError, match="MCP_AUTH_RESOURCE"):
        AuthConfig.from_env({})


def test_per_tool_rules_from_the_environment() -> None:
    """What the gateway command (configured by variables) needs: the per-tool rules."""
    config = AuthConfig.from_env(
        {
            "MCP_AUTH_RESOURCE": RESOURCE,
            "MCP_AUTH_ISSUER": ISSUER,
            "MCP_AUTH_TOOL_SCOPES": "delete_notes=notes:delete; audit=admin, audit:read",
            "MCP_AUTH_PROMPT_SCOPES": '{"incident": ["oncall"]}',
            "MCP_AUTH_RESOURCE_SCOPES": "file:///secret/*=secrets",
            "MCP_AUTH_METHOD_SCOPES": "resources/read=resources",
        }
    )
    assert config.scopes.tools == {"delete_notes": {"notes:delete"}, "audit": {"admin", "audit:read"}}
    assert config.scopes.prompts == {"incident": {"oncall"}}
    assert config.scopes.resources == {"file:///secret/*": {"secrets"}}
    assert config.scopes.methods == {"resources/read": {"resources"}}
    for value, problem in (("delete_notes", "is not NAME=SCOPES"), ("{not json", "is not a JSON object")):
        with pytest.raises(ValueError, match=f"MCP_AUTH_TOOL_SCOPES.*{problem}"):
            AuthConfig.from_env({"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_TOOL_SCOPES": value})


def test_a_decision_engine_from_the_environment() -> None:
    """MCP_AUTH_DECISION_ENGINE (`authzen:URL`; `cedar:FILE`, tests/engines/test_cedar.py), the
    gateway command's only way to name one; refused when it cannot work."""
    from mcp_auth_middleware.engines import AuthZEN

    base = {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": ISSUER}
    config = AuthConfig.from_env(
        base
        | {
            "MCP_AUTH_DECISION_ENGINE": "authzen:https://pdp.example.com/",
            "MCP_AUTH_DECIDED_METHODS": "tools/call",
            "MCP_AUTH_DECISION_TIMEOUT": "0.5",
        }
    )
    assert isinstance(config.decision_engine, AuthZEN) and config.decision_engine.pdp == "https://pdp.example.com"
    assert config.decided_methods == {"tools/call"} and config.decision_timeout == 0.5
    for value, problem in (
        ("https://pdp.example.com", "write authzen:URL"),
        ("opa:https://pdp.example.com", "write authzen:URL"),
        ("cedar:", "write authzen:URL"),
        ("", "write authzen:URL"),
        ("authzen:http://pdp.internal:3592", "plain http"),
    ):
        with pytest.raises(ValueError, match=problem):
            AuthConfig.from_env(base | {"MCP_AUTH_DECISION_ENGINE": value})
    with pytest.raises(ValueError, match="MCP_AUTH_DECISION_TIMEOUT is 'soon'"):
        AuthConfig.from_env(base | {"MCP_AUTH_DECISION_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match="did you mean MCP_AUTH_DECISION_ENGINE"):
        AuthConfig.from_env(base | {"MCP_AUTH_DECISION_ENGIN": "authzen:https://pdp.example.com"})
    widened = AuthConfig.from_env(
        base | {"MCP_AUTH_DECISION_ENGINE": "authzen:http://pdp.internal:3592", "MCP_AUTH_ALLOW_HTTP": "1"}
    )
    assert isinstance(widened.decision_engine, AuthZEN)


def test_several_issuers_from_the_environment() -> None:
    from mcp_auth_middleware import IssuerRouter

    config = AuthConfig.from_env(
        {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUERS": "https://a.example, https://b.example"}
    )
    assert config.authorization_servers == ("https://a.example", "https://b.example")
    validator = MCPAuthMiddleware(echo_app(), config).validator
    assert isinstance(validator, IssuerRouter) and validator.issuers == config.authorization_servers


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
    dpop = AuthConfig.from_env(environ).dpop
    assert (dpop is not None and dpop.required) is expected


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
        assert config.scopes.required == {"mcp", "notes:read"}
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


def test_options_are_grouped_by_concern_and_the_flat_ones_build_the_same_groups() -> None:
    """httpx-style groups (`Limits`, `Guard`, `DPoP`, ...): the flat keywords and variables
    build exactly the objects one could pass."""
    from mcp_auth_middleware.config import DPoP, Guard, Limits

    flat = AuthConfig(
        resource=RESOURCE, issuer=ISSUER, max_body=2048, failure_limit="5/minute", dpop_required=True, dpop_nonces=True
    )
    grouped = AuthConfig(
        resource=RESOURCE,
        issuer=ISSUER,
        limits=Limits(max_body=2048),
        guard=Guard(failure_limit="5/minute"),
        dpop=DPoP(required=True, nonces=True),
    )
    assert (flat.limits, flat.guard, flat.dpop) == (grouped.limits, grouped.guard, grouped.dpop)
    assert flat.resource.metadata_url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert AuthConfig(resource=RESOURCE, issuer=ISSUER).dpop is None  # off unless asked for
    with pytest.raises(ValueError, match="pass limits= or its flat options"):
        AuthConfig(resource=RESOURCE, issuer=ISSUER, limits=Limits(), max_body=10)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ("Limits(max_body=0)", "max_body must be a positive number of bytes"),
        ("Limits(max_token_length=True)", "max_token_length must be a positive number"),
        ("Guard(failure_limit='often')", "failure_limit 'often' is not a rate limit"),
        ("Guard(trusted_proxies='10.0.0.0/33')", "trusted_proxies: '10.0.0.0/33' is not an address or network"),
        ("Guard(forwarded_header='x-real-ip')", "forwarded_header must be one of"),
        ("DPoP(algorithms='HS256')", "DPoP algorithms must be asymmetric"),
        ("DPoP(max_age=0)", "dpop max_age must be 1-3600 s"),
        ("BrowserAccess(allowed_origins='app.example')", "allowed_origins: not an http"),
        ("ScopeRules(tools={'x': 'a\"b'})", "not a valid OAuth scope token"),
        ("Validation(token_validation='magic')", "token_validation must be"),
        ("Resource('/mcp')", "resource '/mcp' is not an absolute URL"),
        ("Resource('https://mcp.example.com/m\"cp')", "characters not allowed in a URI"),
    ],
)
def test_each_group_checks_its_own_values(build: str, message: str) -> None:
    from mcp_auth_middleware import config

    with pytest.raises(ValueError, match=message):
        eval(build, vars(config))


def test_a_validator_names_its_authorization_servers(issuer: LocalIssuer) -> None:
    """RFC 9728 §2: with `validator=` alone, its issuer is the advertised authorization server."""
    app = MCPAuthMiddleware(echo_app(), resource=RESOURCE, validator=issuer.validator())
    assert app.metadata.document["authorization_servers"] == [issuer.issuer]

    class Anonymous:
        async def validate(self, token: str) -> object: ...

    with pytest.raises(ValueError, match="authorization_servers needs at least one entry"):
        MCPAuthMiddleware(echo_app(), resource=RESOURCE, validator=Anonymous())  # type: ignore[arg-type]


def test_public_paths_are_paths() -> None:
    with pytest.raises(ValueError, match="public_paths are paths inside the app, starting with '/': not 'health'"):
        AuthConfig(resource=RESOURCE, issuer=ISSUER, public_paths="health")


def test_a_misspelled_variable_is_a_startup_error_naming_the_right_one() -> None:
    """`MCP_AUTH_REQUIRED_SCOPE=admin` (an S missing) would otherwise let every caller in."""
    base = {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": "https://auth.example.com"}
    with pytest.raises(ValueError, match=r"MCP_AUTH_REQUIRED_SCOPE \(did you mean MCP_AUTH_REQUIRED_SCOPES\?\)"):
        AuthConfig.from_env({**base, "MCP_AUTH_REQUIRED_SCOPE": "admin"})
    with pytest.raises(ValueError, match="did you mean MCP_AUTH_TOOL_SCOPES"):
        AuthConfig.from_env({**base, "MCP_AUTH_TOOL_SCOPE": "delete_notes=notes:delete"})
    with pytest.raises(ValueError, match=r"MCP_AUTH_SOMETHING_ELSE \(docs/configuration.md lists them\)"):
        AuthConfig.from_env({**base, "MCP_AUTH_SOMETHING_ELSE": "1"})
    # The gateway service's variables and the commands' are known: one environment serves both.
    config = AuthConfig.from_env({**base, "MCP_AUTH_GATEWAY": "nginx", "MCP_AUTH_LOG_LEVEL": "info", "OTHER": "x"})
    assert config.resource.url == RESOURCE


def test_a_misspelled_variable_stops_the_middleware_from_env() -> None:
    from starlette.applications import Starlette

    from mcp_auth_middleware import MCPAuthMiddleware

    with pytest.raises(ValueError, match="did you mean MCP_AUTH_REQUIRED_SCOPES"):
        MCPAuthMiddleware.from_env(
            Starlette(),
            {"MCP_AUTH_RESOURCE": RESOURCE, "MCP_AUTH_ISSUER": "https://a.example", "MCP_AUTH_REQUIRED_SCOPE": "x"},
        )


def test_tool_callers_from_the_environment() -> None:
    config = AuthConfig.from_env(
        {
            "MCP_AUTH_RESOURCE": RESOURCE,
            "MCP_AUTH_ISSUER": "https://auth.example.com",
            "MCP_AUTH_TOOL_CALLERS": "delete_account=users; nightly_sync=machines",
        }
    )
    assert dict(config.scopes.callers) == {"delete_account": "users", "nightly_sync": "machines"}
    assert "callers: delete_account=users; nightly_sync=machines" in config.scopes.describe()
