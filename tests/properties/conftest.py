"""Hypothesis settings for the property tests: a fixed budget, the same examples every run.

CI must stay fast and repeatable, so the ``ci`` profile (the default) is derandomized
(examples follow from each test's own code, no stored database) with a fixed number of
examples; each test scales that number down by its cost (:func:`budget`). Hunting for new
failures locally: ``HYPOTHESIS_PROFILE=hunt .venv/bin/pytest tests/properties`` (random,
ten times the examples). An input that ever failed is kept as an explicit ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "hunt",
    max_examples=1000,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
