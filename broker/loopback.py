"""Which hosts count as this machine: the one place plain http is acceptable.

Shared by the server (issuer and key URLs, the demo IdPs, cookie rules) and the client
(a broker URL given to ``sts-broker login``), so both sides draw the line in the same place
without the client importing the server's config models.
"""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: the only hosts plain http is acceptable for.

    Tests and fixture identity providers run there; anywhere else http would let anyone on
    the path swap the signing keys.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
