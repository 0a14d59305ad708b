"""Which URLs and addresses webhooks may reach (SSRF rule), IPv4 and IPv6 alike."""

from __future__ import annotations

import ipaddress

import pytest

from retention_webhooks.targets import (
    TargetRefused,
    check_url,
    checked_target,
    parse_networks,
    refusal,
)

REFUSED = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "127.0.0.1",
    "127.8.9.10",
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "100.64.0.1",  # shared address space (carrier NAT)
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:db8::1",  # documentation
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_an_allowed_network_exempts_only_itself() -> None:
    loopback = parse_networks("127.0.0.1/32")
    assert refusal(ipaddress.ip_address("127.0.0.1"), loopback) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), loopback) is None
    for other in ("127.0.0.2", "::1", "10.0.0.1", "169.254.169.254"):
        assert refusal(ipaddress.ip_address(other), loopback) is not None


def test_the_reason_names_the_kind() -> None:
    assert "link-local" in refusal(ipaddress.ip_address("169.254.169.254"))  # type: ignore[operator]
    assert "loopback" in refusal(ipaddress.ip_address("::1"))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "https://"),
        ("example.com/hook", "https://"),
        ("https:///path", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:99999/", "valid URL"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/" + "a" * 2100, "longer"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(TargetRefused, match=problem):
        check_url(url)


def test_default_ports() -> None:
    assert check_url("https://example.com/hook") == ("https", "example.com", 443)
    assert check_url("http://example.com:8080/hook") == ("http", "example.com", 8080)
    assert check_url("https://[2001:4860:4860::8888]/") == ("https", "2001:4860:4860::8888", 443)


async def test_a_name_resolving_to_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        await checked_target("http://localhost:9/hook")
    target = await checked_target("http://localhost:9/hook", parse_networks("127.0.0.0/8,::1/128"))
    assert target.address.is_loopback and target.port == 9


async def test_an_ip_literal_needs_no_resolver() -> None:
    with pytest.raises(TargetRefused, match="private"):
        await checked_target("https://10.0.0.1/hook")
    with pytest.raises(TargetRefused, match="loopback"):
        await checked_target("https://[::1]:8443/hook")
