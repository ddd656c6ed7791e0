"""``sts-broker --help``: every option of every command says what it does and its default."""

from __future__ import annotations

import argparse

from broker.cli import _parser


def test_every_option_says_what_it_does_and_its_default() -> None:
    missing = []
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest == "help" or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                missing.append(f"{name} {action.dest}: no help")
            elif action.default not in (None, False, "", [], 0) and "default" not in action.help:
                missing.append(f"{name} {action.dest}: default {action.default!r} not said")
    assert not missing, "\n".join(missing)
