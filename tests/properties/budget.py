"""How many examples a property test runs: a share of the loaded profile's budget."""

from __future__ import annotations

from hypothesis import settings


def budget(percent: int) -> int:
    """``percent`` of the profile's ``max_examples`` (at least 10), for costlier tests."""
    return max(10, settings.default.max_examples * percent // 100)
