"""Metrics through the OpenTelemetry API, read with the SDK's in-memory reader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.testing import LocalIssuer

from .conftest import RESOURCE, asgi_client, bearer

Factory = Callable[..., MCPAuthMiddleware]


def collect(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    data = reader.get_metrics_data()
    result: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = result.setdefault(metric.name, [])
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count
                    points.append((dict(point.attributes or {}), value))
    return result


async def test_decisions_cache_and_guard_counted(make_app: Factory, issuer: LocalIssuer) -> None:
    reader = InMemoryMetricReader()
    app = make_app(meter_provider=MeterProvider(metric_readers=[reader]), failure_limit="2/minute")
    good = issuer.mint_token(audience=RESOURCE)
    async with asgi_client(app) as client:
        for _ in range(3):
            await client.post("/mcp", headers=bearer(good))
        await client.post("/mcp")
        for i in range(4):
            await client.post("/mcp", headers=bearer(f"bad-{i}"))
    metrics = collect(reader)
    decisions = {(a["outcome"], a["reason"]): v for a, v in metrics["mcp_auth.decisions"]}
    assert decisions[("allow", "valid token")] == 3
    assert decisions[("challenge", "no bearer token")] == 1
    assert decisions[("deny", "The access token is malformed")] == 2
    assert decisions[("limited", "Too many failed authentication attempts")] == 2
    cache = {a["result"]: v for a, v in metrics["mcp_auth.token_cache"]}
    # The good token verified once, and the four bad ones: a JWT validator checks locally, so
    # it still looks at tokens from a blocked address (a valid one would pass) and answers 429.
    assert cache == {"hit": 2, "miss": 5}
    assert metrics["mcp_auth.rate_limit.blocks"][0][1] == 2


async def test_introspection_requests_and_duration(make_app: Factory) -> None:
    from mcp_auth_middleware.testing import running_authorization_server

    reader = InMemoryMetricReader()
    with running_authorization_server(token_format="opaque", default_resource=RESOURCE) as server:
        server.register_resource_server("rs", "rs-secret", [RESOURCE])
        app = MCPAuthMiddleware(
            make_app().app,
            resource=RESOURCE,
            issuer=server.issuer,
            token_validation="introspection",
            client_id="rs",
            client_secret="rs-secret",
            meter_provider=MeterProvider(metric_readers=[reader]),
        )
        token = server.mint_token(sub="eve")
        async with asgi_client(app) as client:
            for _ in range(3):
                assert (await client.post("/mcp", headers=bearer(token))).status_code == 200
    metrics = collect(reader)
    requests = {a["result"]: v for a, v in metrics["mcp_auth.introspection.requests"]}
    assert requests == {"ok": 1, "error": 0}
    assert metrics["mcp_auth.introspection.duration"][0][1] == 1  # one recorded duration
    assert {a["result"]: v for a, v in metrics["mcp_auth.token_cache"]} == {"hit": 2, "miss": 1}


async def test_no_provider_is_a_no_op(make_app: Factory, issuer: LocalIssuer) -> None:
    app = make_app()
    async with asgi_client(app) as client:
        assert (await client.post("/mcp", headers=bearer(issuer.mint_token(audience=RESOURCE)))).status_code == 200
    assert app.metrics.decisions[("allow", "valid token")] == 1
