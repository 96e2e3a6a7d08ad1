"""The SSRF guard: which webhook targets may be called, and the address to connect to."""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class ForbiddenTarget(ValueError):
    """A webhook URL that must not be called."""


@dataclass(frozen=True)
class Target:
    """A checked URL: its host, port and the addresses it resolved to, in resolver order."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host, in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_forbidden(ip: IPAddress) -> bool:
    """True for loopback, private, CGNAT, link-local, multicast, reserved, unspecified and their IPv6 forms."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_forbidden(ip.ipv4_mapped)
        if ip.sixtofour is not None and is_forbidden(ip.sixtofour):
            return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved


def parse(url: str) -> tuple[httpx.URL, str, int]:
    """The URL, its host (IDNA) and port; ForbiddenTarget unless it is an absolute http(s) URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ForbiddenTarget(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ForbiddenTarget("the URL must use http or https")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ForbiddenTarget("the URL has no host")
    return parsed, host, parsed.port or (443 if parsed.scheme == "https" else 80)


def check(url: str, allow_private: bool, resolve: Resolver = system_resolver) -> Target:
    """Resolve the URL's host and refuse it when any address is forbidden (unless private targets are allowed)."""
    parsed, host, port = parse(url)
    try:
        addresses = resolve(host.strip("[]"), port)
    except (OSError, UnicodeError) as exc:
        raise ForbiddenTarget(f"the host {host!r} does not resolve: {exc}") from None
    if not addresses:
        raise ForbiddenTarget(f"the host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if is_forbidden(ipaddress.ip_address(address.split("%", 1)[0])):
                raise ForbiddenTarget(f"the host {host!r} resolves to {address}, which is not a public address")
    return Target(parsed, host, port, tuple(addresses))


def check_syntax(url: str, allow_private: bool, resolve: Resolver = system_resolver) -> None:
    """The check made when a subscription is created or changed: a full check unless private targets are allowed."""
    if allow_private:
        parse(url)
    else:
        check(url, allow_private, resolve)
