"""The SSRF guard of the local authorization server: a URL a client names is fetched only from
a public address, whatever its spelling, and the address checked is the one connected to."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from mcp_auth_middleware.server.public_addresses import NotPublicError, is_public, public_target


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space
        "0.0.0.0",
        "127.0.0.1",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fec0::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "2002:0a00:0001::1",  # 6to4 around 10.0.0.1
        "2001:db8::1",
    ],
)
def test_special_use_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"])
def test_global_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_loopback_only_in_development() -> None:
    assert is_public(ipaddress.ip_address("127.0.0.1"), loopback=True)
    assert is_public(ipaddress.ip_address("::1"), loopback=True)
    assert not is_public(ipaddress.ip_address("10.0.0.1"), loopback=True)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names the test makes up resolve to the address given here; nothing asks a real DNS."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/client.json",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/client.json",
        "https://[::1]/client.json",
        "https://0.0.0.0/client.json",
        "https://2130706433/client.json",  # 127.0.0.1 as one number
        "https://0x7f.1/client.json",
        "https://[::ffff:10.0.0.1]/client.json",
        "https://internal.example/client.json",
    ],
)
async def test_every_spelling_of_a_private_address_is_refused(url: str, resolver: dict[str, str]) -> None:
    resolver["internal.example"] = "10.0.0.5"
    with pytest.raises(NotPublicError, match="not a public address"):
        await public_target(url)


async def test_the_checked_address_is_the_one_connected_to(resolver: dict[str, str]) -> None:
    resolver["app.example"] = "93.184.215.14"
    target, host, extensions = await public_target("https://app.example:8443/client.json?v=1")
    assert target == "https://93.184.215.14:8443/client.json?v=1"
    assert host == "app.example:8443"
    assert extensions == {"sni_hostname": "app.example"}  # TLS checks the certificate of the name


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(NotPublicError, match="does not resolve"):
        await public_target("https://no-such-host.invalid/client.json")
