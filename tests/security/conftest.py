"""Every audit event the security suite makes is kept, and the secrets its traffic carried.

An autouse fixture (package scope: the security suite only) subscribes to the audit trail
of every broker in this process (:func:`broker.observability.audit.subscribe`) and wraps
every in-process uvicorn server's app in a :class:`~tests.audit_scan.TrafficTap`, which teaches a
:class:`~tests.audit_scan.SecretScanner` each secret that crosses it (assertions, ID
tokens, TOTP codes, cookies, minted keys and tokens). ``test_audit_secrets.py``, moved to
the end of the suite by :func:`pytest_collection_modifyitems`, then checks every event
against every secret seen, and against the event schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from broker.observability import subscribe
from tests.audit_scan import SecretScanner, TrafficTap

SCAN_MODULE = "test_audit_secrets.py"


@dataclass
class AuditCapture:
    events: list[dict[str, Any]] = field(default_factory=list)
    scanner: SecretScanner = field(default_factory=SecretScanner)


@pytest.fixture(scope="package", autouse=True)
def audit_capture() -> Iterator[AuditCapture]:
    """Active while tests/security runs, and only then (package scope)."""
    capture = AuditCapture()

    def keep(event: Mapping[str, Any]) -> None:
        capture.events.append(dict(event))

    stop = subscribe(keep)
    original = uvicorn.Config.load

    def load_tapped(self: uvicorn.Config) -> None:
        original(self)
        self.loaded_app = TrafficTap(self.loaded_app, capture.scanner)

    uvicorn.Config.load = load_tapped  # type: ignore[method-assign]
    try:
        yield capture
    finally:
        uvicorn.Config.load = original  # type: ignore[method-assign]
        stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The scan runs after every other security test (and before whatever follows them in
    the session), so it sees all their events."""
    here = Path(__file__).parent
    scan = [item for item in items if item.path.name == SCAN_MODULE]
    if not scan:
        return
    rest = [item for item in items if item.path.name != SCAN_MODULE]
    ours = [n for n, item in enumerate(rest) if here in item.path.parents]
    at = ours[-1] + 1 if ours else len(rest)
    items[:] = rest[:at] + scan + rest[at:]
