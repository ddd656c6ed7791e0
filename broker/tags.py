"""AWS's session tag rules, in one place, whoever supplies the tags.

A tag reaches a session from a caller's ``Tags``, a token's claim, a SAML attribute or a
config template; each caller maps :class:`TagError` to its own protocol's code
(``ValidationError``, ``IDPRejectedClaim``, a config mistake). The rules are AWS's
(IAM User Guide, "Passing session tags in AWS STS"): a key is 1-128 and a value 0-256 of
letters, digits, white space and ``_.:/=+-@``; no key starts with ``aws:``; keys are
case-insensitive, so two spellings of one key are refused; at most 50 tags; transitive
keys must name tags passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

MAX_TAGS: Final = 50
MAX_KEY_CHARS: Final = 128
MAX_VALUE_CHARS: Final = 256
_TEXT: Final = re.compile(r"[\w\s.:/=+\-@]*")


class TagError(ValueError):
    """A tag set AWS would refuse; the message says which rule and which key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _shown(text: str) -> str:
    return repr(text if len(text) <= 64 else text[:61] + "...")


def validate_tags(tags: Mapping[str, str], transitive_keys: Sequence[str] = ()) -> None:
    """Raise :class:`TagError` unless ``tags`` and ``transitive_keys`` follow AWS's rules."""
    if len(tags) > MAX_TAGS:
        raise TagError(f"A session can carry at most {MAX_TAGS} tags (got {len(tags)}).")
    folded: set[str] = set()
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_KEY_CHARS or not _TEXT.fullmatch(key):
            raise TagError(
                f"Tag key {_shown(key)} must be 1-{MAX_KEY_CHARS} letters, digits, spaces and "
                "_.:/=+-@."
            )
        if len(value) > MAX_VALUE_CHARS or not _TEXT.fullmatch(value):
            raise TagError(
                f"The value of tag {_shown(key)} must be at most {MAX_VALUE_CHARS} letters, "
                "digits, spaces and _.:/=+-@."
            )
        if key.lower().startswith("aws:"):
            raise TagError(f"Tag key {_shown(key)} is reserved: keys may not start with 'aws:'.")
        if key.lower() in folded:
            raise TagError(f"Tag key {_shown(key)} is given twice; tag keys are case-insensitive.")
        folded.add(key.lower())
    for key in transitive_keys:
        if key.lower() not in folded:
            raise TagError(f"Transitive tag key {_shown(key)} is not one of the session tags.")
