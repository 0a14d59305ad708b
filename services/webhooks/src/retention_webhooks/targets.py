"""Where a webhook may be sent: http(s) URLs whose host resolves only to public addresses.

A subscriber names a URL, and the service POSTs to it from inside the deployment: without this
rule a tenant could make it reach the cloud metadata service (169.254.169.254), the cluster's
own services or anything on localhost (SSRF). A host is refused when any address it resolves
to is private, loopback, link-local, multicast, reserved, unspecified or otherwise not globally
routable — IPv4, IPv6, and IPv4 inside IPv6 (mapped, 6to4, Teredo) — unless the address lies in
a network the operator allowed (`RETENTION_WEBHOOKS_ALLOWED_NETWORKS`). The check runs when a
subscription is made and again before every attempt, and the attempt connects to the address
that was checked (`Target.address`), so a DNS answer that changes in between (DNS rebinding)
cannot redirect it; redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
# Most specific first: 169.254.169.254 is also "private", but link-local says more.
_KINDS = (
    ("loopback", "a loopback"),
    ("link_local", "a link-local"),
    ("multicast", "a multicast"),
    ("unspecified", "an unspecified"),
    ("reserved", "a reserved"),
    ("private", "a private"),
)


class TargetRefused(ValueError):
    """The URL is malformed, or its host is (or resolves to) an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # as written in the URL (no brackets)
    port: int
    address: IPAddress  # the checked address the attempt connects to


def parse_networks(spec: str) -> tuple[IPNetwork, ...]:
    """`RETENTION_WEBHOOKS_ALLOWED_NETWORKS`: comma-separated CIDRs (ValueError if malformed)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    )


def check_url(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a URL webhooks may be sent to, or TargetRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise TargetRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"is not a valid URL: {error}") from None
    if parts.scheme not in ("https", "http"):
        raise TargetRefused("must be an https:// (or http://) URL")
    if not parts.hostname:
        raise TargetRefused("has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry credentials (user:password@); put them in the path")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refusal(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why webhooks may not reach `address`, or None when they may."""
    if any(address in network for network in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            return refusal(embedded, allowed)
    for kind, says in _KINDS:
        if getattr(address, f"is_{kind}"):
            return f"{address} is {says} address"
    if not address.is_global:  # shared address space (100.64/10), documentation ranges, ...
        return f"{address} is not a public address"
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal: itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as error:
        raise TargetRefused(f"host {host!r} does not resolve: {error}") from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused(f"host {host!r} does not resolve")
    return addresses


async def checked_target(url: str, allowed: Sequence[IPNetwork] = ()) -> Target:
    """The URL with the address to connect to, once every address its host resolves to passed
    the rule (one refused address refuses the host: a client may pick any of them)."""
    scheme, host, port = check_url(url)
    addresses = await resolve(host, port)
    for address in addresses:
        if (reason := refusal(address, allowed)) is not None:
            raise TargetRefused(f"{host} resolves to {reason}; webhooks go to public addresses")
    return Target(url, scheme, host, port, addresses[0])
