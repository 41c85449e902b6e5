"""OriginCheck: the resource's own origin, configured ones, loopback only for a loopback resource."""

from __future__ import annotations

import pytest

from mcp_auth_middleware.config import BrowserAccess, Resource
from mcp_auth_middleware.origin import OriginCheck


def test_configured_origins_must_be_origins() -> None:
    with pytest.raises(ValueError, match="allowed_origins"):
        BrowserAccess(allowed_origins=["app.example"])


def test_public_resource() -> None:
    allowed = BrowserAccess(allowed_origins=["https://APP.example:443"]).origins
    check = OriginCheck(Resource("https://mcp.example.com/mcp"), allowed)
    assert check.allows(b"https://mcp.example.com") and check.allows(b"https://app.example")
    assert not check.allows(b"http://mcp.example.com")  # another scheme is another origin
    assert not check.allows(b"http://localhost:6274")
    assert not check.allows(b"\xff\xfe")


def test_loopback_resource() -> None:
    check = OriginCheck(Resource("http://localhost:8000/mcp"))
    assert check.allows(b"http://127.0.0.1:6274") and check.allows(b"http://localhost")
    assert not check.allows(b"http://127.0.0.1.nip.io")
