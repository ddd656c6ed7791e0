"""Readiness: the checks ``/readyz`` runs and the answer they add up to.

A broker is ready when it can do its work now, not merely run: the store answers (every
single-use path needs it) and every configured identity provider's keys are usable (fresh,
or still within the last-known-good window of an outage). Each check is a plain value the
layer that knows produces (the key sources in ``identity/``, the store wrapper), so the
route that answers needs to know none of their rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

CheckKind = Literal["store", "oidc_keys", "oidc_discovery", "saml_metadata"]


@dataclass(frozen=True)
class Check:
    """One readiness check: what was checked, and why it failed (None when it passed)."""

    kind: CheckKind
    target: str
    """The backend, issuer URL, login provider or SAML provider ARN checked."""
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.kind, "target": self.target, "ok": self.ok}
        if self.problem is not None:
            out["reason"] = self.problem
        return out


def readiness(checks: Sequence[Check]) -> tuple[int, dict[str, Any]]:
    """``(status, body)``: 200 when every check passed, else 503 naming the failed ones."""
    failed = [c for c in checks if not c.ok]
    body = {
        "status": "not ready" if failed else "ready",
        "failed": [f"{c.kind} {c.target}" for c in failed],
        "checks": [c.as_json() for c in checks],
    }
    return (503 if failed else 200), body
