"""The session lengths the pages offer (role picker, CLI approval), and how they are labelled."""

from __future__ import annotations

from typing import Any

MIN_DURATION = 900
MAX_DURATION = 43200
"""AssumeRole's own ``DurationSeconds`` bounds."""
DEFAULT_DURATION = 3600
STEPS = (900, 1800, 3600, 7200, 14400, 28800, 43200)


def label(seconds: int) -> str:
    """``15 min``, ``1 h``, ``90 s``: short, as a ``<select>`` shows it."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def duration_options(
    max_duration: int, wanted: int = DEFAULT_DURATION, *, exact: bool = False
) -> list[dict[str, Any]]:
    """The ``<select>`` options up to ``max_duration``, ``wanted`` (capped) preselected.

    ``exact`` adds ``wanted`` itself when it is not a step (the CLI's ``--duration``);
    otherwise the longest step not above it is preselected. When even 15 min is more than
    is left (a SAML ``SessionNotOnOrAfter`` close by), the one choice is the API's minimum,
    which the engine cuts to the end of the sign-in, labelled with what will be granted.
    """
    steps = [s for s in STEPS if s <= max_duration]
    if not steps:
        minutes = max(1, max_duration // 60)
        return [
            {
                "seconds": MIN_DURATION,
                "label": f"{minutes} min (until your sign-in ends)",
                "selected": True,
            }
        ]
    target = min(wanted, max_duration)
    if exact and target >= MIN_DURATION and target not in steps:
        steps = sorted([*steps, target])
        selected = target
    else:
        selected = max((s for s in steps if s <= target), default=steps[0])
    return [{"seconds": s, "label": label(s), "selected": s == selected} for s in steps]
