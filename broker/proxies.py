"""Which address a request came from when proxies stand in between (``trusted_proxies``).

``X-Forwarded-For`` is written by whoever sends the request, so it says nothing unless the
peer that sent it is a proxy we run. The source address (what throttling counts, what
``aws:SourceIp`` tests, what an audit records) is therefore:

- the TCP peer, when ``trusted_proxies`` is empty or does not list the peer: the header is
  ignored, whatever it says;
- otherwise the right-most address in ``X-Forwarded-For`` that is not itself a trusted
  proxy. Each proxy appends the address it was connected from, so reading from the right
  and stopping at the first address no trusted proxy vouches for gives the client; what a
  client wrote into the header itself stands further left and is never reached;
- nothing (the source is unknown) when that entry is not an IP address at all, which only a
  proxy that passes the client's header on without appending can produce: a garbled source
  must neither name some other client's bucket nor satisfy an ``aws:SourceIp`` condition.

From a trusted peer, ``X-Forwarded-Proto`` (exactly ``http`` or ``https``) also sets the
request's scheme, so ``aws:SecureTransport`` is true behind a proxy that terminates TLS.

This is an ASGI middleware that rewrites the scope's ``client`` (and ``scheme``), installed
outermost and only when ``trusted_proxies`` is set, so every route reads the same address
through ``request.client`` and a broker without proxies pays nothing. The ASGI server must
not do the same on its own (uvicorn's ``proxy_headers`` trusts 127.0.0.1 by default):
``sts-broker serve`` turns that off.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE = 4096


@functools.lru_cache(maxsize=_CACHE)
def address_in(entry: str) -> str | None:
    """The IP address an ``X-Forwarded-For`` entry names, normalised, or None.

    Entries may carry a port (``203.0.113.7:4711``, ``[2001:db8::1]:443``), as some load
    balancers write them; an IPv4-mapped IPv6 address is its IPv4 address.
    """
    text = entry.strip()
    port = ""
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        port = port[1:]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class TrustedProxies:
    """The configured proxy networks, and the source address of a request they forwarded."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[_Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)
        self.trusts = functools.lru_cache(maxsize=_CACHE)(self._trusts)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def _trusts(self, address: str) -> bool:
        """Whether ``address`` (normalised, as :func:`address_in` gives it) is a proxy of ours."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def source(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address ("" when unknowable) for a request from ``peer`` carrying
        these ``X-Forwarded-For`` header values, by the rules of the module doc."""
        normalised = address_in(peer) or peer
        if not self.trusts(normalised):
            return peer
        entries = [e for value in forwarded_for for e in value.split(",") if e.strip()]
        if not entries:
            return normalised
        for entry in reversed(entries):
            address = address_in(entry)
            if address is None:
                return ""
            if not self.trusts(address):
                return address
        # Every hop is one of ours: the request began at a trusted host, the left-most.
        return address_in(entries[0]) or ""


class ForwardedForMiddleware:
    """Sets ``scope["client"]`` to the source address (``None`` when unknowable) and, from a
    trusted peer, ``scope["scheme"]`` from ``X-Forwarded-Proto``."""

    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies) -> None:
        self.app = app
        self._proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = client[0] if client else ""
        if peer and self._proxies.trusts(address_in(peer) or peer):
            forwarded: list[str] = []
            proto = ""
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded.append(value.decode("latin-1"))
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").strip().lower()
            source = self._proxies.source(peer, forwarded)
            scope = dict(scope, client=(source, 0) if source else None)
            if proto in ("http", "https") and scope["type"] == "http":
                scope["scheme"] = proto
        await self.app(scope, receive, send)
