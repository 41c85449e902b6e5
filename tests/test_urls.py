"""One URL normalisation for three comparisons: browser origins, DPoP `htu`, audiences."""

from __future__ import annotations

import pytest

from mcp_auth_middleware.urls import canonical_uri, differences, normalized_htu, origin_of


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://MCP.example.com/mcp", "https://mcp.example.com"),
        ("https://mcp.example.com:443", "https://mcp.example.com"),
        ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000"),
        ("http://[::1]:80/", "http://[::1]"),
        ("null", None),
        ("file:///etc/passwd", None),
        ("https://user@mcp.example.com", None),
        ("https://mcp.example.com:99999", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("HTTPS://MCP.Example.com:443/mcp?x=1#f", "https://mcp.example.com/mcp"),
        ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp"),
        ("http://[::1]:80", "http://[::1]/"),
    ],
)
def test_htu_is_compared_without_query_fragment_case_or_default_port(url: str, htu: str) -> None:
    assert normalized_htu(url) == htu


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", "https://user@mcp.example.com/mcp", "https://h:99999/"])
def test_an_htu_that_is_not_an_http_url_matches_nothing(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        normalized_htu(url)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("HTTPS://MCP.example.com:443/mcp/", "https://mcp.example.com/mcp"),
        ("https://mcp.example.com/mcp?tenant=a", "https://mcp.example.com/mcp?tenant=a"),
        ("api://my-api", "api://my-api"),  # not an http(s) URL: exactly as it is
        ("https://user@mcp.example.com/mcp", "https://user@mcp.example.com/mcp"),
        ("3f2c7d1a-0000-4000-8000-000000000000", "3f2c7d1a-0000-4000-8000-000000000000"),
    ],
)
def test_canonical_audiences(value: str, canonical: str) -> None:
    assert canonical_uri(value) == canonical


def test_the_three_agree_on_scheme_host_and_port() -> None:
    """One default-port table and one case rule for every comparison."""
    url = "HTTP://Example.COM:80/a/"
    assert origin_of(url) == "http://example.com"
    assert normalized_htu(url) == "http://example.com/a/"
    assert canonical_uri(url) == "http://example.com/a"


def test_differences_name_each_part_and_only_real_ones() -> None:
    assert differences("https://mcp.example.com/mcp", "https://MCP.example.com:443/mcp") == []
    assert differences("https://[::1]:8443/mcp", "https://[::1]/mcp") == [
        "port: clients use 8443, resource says default (the proxy's port, not the app's)"
    ]
    both = differences("http://mcp.example.com:8080/api/mcp", "https://mcp.example.com/mcp")
    assert [line.split(":")[0] for line in both] == ["scheme", "port", "path"]
    assert differences("mcp.example.com/mcp", "https://mcp.example.com/mcp") == [
        "'mcp.example.com/mcp' is not an http(s) URL with a host"
    ]
