"""The source address behind proxies: X-Forwarded-For believed only from trusted proxies,
read from the right, and never turned into an address a client chose.

Forged headers are built as an attacker would send them (several entries, several headers,
ports, junk), and each case checks the exact address the broker would count and test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.proxies import ForwardedForMiddleware, TrustedProxies, address_in

LB = ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:DB8:0::1]", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", None),
        ("_hidden", None),
        ("203.0.113.7.evil", None),
        ("", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("203.0.113.7:http", None),
    ],
)
def test_entries_are_ip_addresses_or_nothing(entry: str, address: str | None) -> None:
    assert address_in(entry) == address


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    proxies = TrustedProxies([])
    assert not proxies
    assert proxies.source("198.51.100.1", ["203.0.113.7"]) == "198.51.100.1"


@pytest.mark.parametrize(
    ("peer", "forwarded", "source"),
    [
        # An untrusted peer's header says nothing, however it is written.
        ("198.51.100.1", ["203.0.113.7"], "198.51.100.1"),
        ("198.51.100.1", ["10.0.0.5, 203.0.113.7"], "198.51.100.1"),
        # From our load balancer: the address it appended.
        ("10.0.0.5", ["203.0.113.7"], "203.0.113.7"),
        # A client's forged entries stand to the left and are never reached.
        ("10.0.0.5", ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
        ("10.0.0.5", ["10.9.9.9, 203.0.113.7"], "203.0.113.7"),
        # A chain of our proxies is walked through, right to left.
        ("10.0.0.6", ["6.6.6.6, 203.0.113.7, 10.0.0.5"], "203.0.113.7"),
        ("fd00::2", ["203.0.113.7, fd00::1"], "203.0.113.7"),
        # Several headers read as one list, in order (RFC 9110 5.3).
        ("10.0.0.5", ["6.6.6.6", "203.0.113.7"], "203.0.113.7"),
        ("10.0.0.5", ["203.0.113.7:51234"], "203.0.113.7"),
        # Every hop ours: the request began at a trusted host (the left-most).
        ("10.0.0.6", ["10.0.0.4, 10.0.0.5"], "10.0.0.4"),
        # No header, or an empty one, from a proxy: the proxy itself.
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", [" , "], "10.0.0.5"),
        # Junk where the client's address should be: unknown, not a guess.
        ("10.0.0.5", ["203.0.113.7, unknown"], ""),
        ("10.0.0.5", ["203.0.113.7, 10.0.0.4, garbage"], ""),
        # An IPv4-mapped peer is the IPv4 address it maps.
        ("::ffff:10.0.0.5", ["203.0.113.7"], "203.0.113.7"),
    ],
)
def test_source_is_the_right_most_address_no_trusted_proxy_vouches_for(
    peer: str, forwarded: list[str], source: str
) -> None:
    assert TrustedProxies(LB).source(peer, forwarded) == source


def _scope(peer: str | None, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "http",
        "headers": headers,
        "client": (peer, 51000) if peer else None,
    }


def _seen(scope: dict[str, Any]) -> dict[str, Any]:
    """What the app behind the middleware is given."""
    seen: dict[str, Any] = {}

    async def app(inner: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(inner)

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    middleware = ForwardedForMiddleware(app, proxies=TrustedProxies(LB))
    asyncio.run(middleware(scope, nothing, ignore))
    return seen


def test_middleware_rewrites_client_and_scheme_only_for_a_trusted_peer() -> None:
    headers = [
        (b"x-forwarded-for", b"6.6.6.6, 203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
    ]
    trusted = _seen(_scope("10.0.0.5", headers))
    assert (trusted["client"], trusted["scheme"]) == (("203.0.113.7", 0), "https")
    untrusted = _seen(_scope("198.51.100.1", headers))
    assert (untrusted["client"], untrusted["scheme"]) == (("198.51.100.1", 51000), "http")


def test_middleware_ignores_a_forwarded_proto_that_is_not_http_or_https() -> None:
    seen = _seen(_scope("10.0.0.5", [(b"x-forwarded-proto", b"https, http")]))
    assert (seen["client"], seen["scheme"]) == (("10.0.0.5", 0), "http")


def test_middleware_leaves_an_unknown_source_unknown() -> None:
    seen = _seen(_scope("10.0.0.5", [(b"x-forwarded-for", b"203.0.113.7, unknown")]))
    assert seen["client"] is None
    assert _seen(_scope(None, [(b"x-forwarded-for", b"203.0.113.7")]))["client"] is None


def test_middleware_passes_lifespan_through_untouched() -> None:
    scope = {"type": "lifespan"}
    assert _seen(scope) == {"type": "lifespan"}
