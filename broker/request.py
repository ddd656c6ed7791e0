"""The raw parts of an HTTP request that signature checks and the Query parser need.

A plain frozen value so the SigV4 verifier and the protocol parser never depend on
Starlette: they can be unit-tested with bytes and reused by any front end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.records import fast_init


@fast_init
@dataclass(frozen=True)
class HttpRequestParts:
    """One request as it arrived on the wire."""

    method: str
    path: str
    """Raw path, still percent-encoded as sent (``/``, ``/sts``)."""
    query_string: str
    """Raw query string as sent, without the leading ``?``."""
    headers: Sequence[tuple[str, str]]
    """Headers in arrival order; names in any case, repeated names allowed."""
    body: bytes
    client_ip: str = ""

    def header(self, name: str) -> str | None:
        """The value of ``name`` (case-insensitive); repeated headers joined with commas."""
        wanted = name.lower()
        values = [v for k, v in self.headers if k.lower() == wanted]
        return ",".join(values) if values else None
