"""The session lengths offered on the role picker and the CLI approval page."""

from __future__ import annotations

from broker.web.durations import duration_options


def _shown(options: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(o["seconds"], o["label"], o["selected"]) for o in options]


def test_steps_up_to_the_role_maximum_with_one_hour_preselected() -> None:
    assert _shown(duration_options(7200)) == [
        (900, "15 min", False),
        (1800, "30 min", False),
        (3600, "1 h", True),
        (7200, "2 h", False),
    ]


def test_a_short_maximum_preselects_the_longest_step_it_allows() -> None:
    assert [o["seconds"] for o in duration_options(2000) if o["selected"]] == [1800]


def test_the_clis_exact_duration_is_offered_and_preselected() -> None:
    options = _shown(duration_options(7200, 5400, exact=True))
    assert (5400, "90 min", True) in options
    # ... capped at the role's maximum.
    assert [o for o in _shown(duration_options(3000, 5400, exact=True)) if o[2]] == [
        (3000, "50 min", True)
    ]


def test_a_sign_in_ending_soon_offers_the_minimum_labelled_with_what_is_left() -> None:
    assert _shown(duration_options(540)) == [(900, "9 min (until your sign-in ends)", True)]
