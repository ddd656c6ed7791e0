"""AWS's session tag rules, stated once for every source of tags.

Session tags reach a session from a caller's ``Tags`` (AssumeRole, GetFederationToken,
GetWebIdentityToken), a SAML assertion's ``PrincipalTag:KEY`` attributes, an OIDC token's
``https://aws.amazon.com/tags`` claim and whatever else maps claims to tags (claim
templates, identity pools). Whoever supplies them, AWS holds them to its ``Tag`` type
(botocore's STS model, ``tagKeyType``/``tagValueType``) and its tagging rules, so one
function checks them all and each path maps :class:`TagError` to its own code
(``ValidationError`` on the API, ``IDPRejectedClaim`` for an identity provider's tags):

- a key is 1-128 and a value 0-256 characters of ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``, the
  model's own pattern translated by :func:`broker.java_regex.translate_java_regex` (so no
  newline, tab or other control character, in a key or a value);
- a key may not start with ``aws:`` (in any case), and keys are unique ignoring case;
- at most :data:`MAX_TAGS` tags, and every transitive key names one of them (ignoring case).

The packed size (session policies and tags together) is not checked here: it measures the
policies too, and the engine reports it as ``PackedPolicyTooLarge`` on every path.

The model's pattern is expanded to explicit Unicode ranges, which takes about a second
(once per process, shared with the STS model's own patterns); ASCII text, the usual case,
is checked with the equivalent ASCII class and never needs it (a test compares the two
over every ASCII character).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Final

from broker.errors import quoted
from broker.java_regex import translate_java_regex

MAX_TAGS: Final = 50
MAX_KEY_CHARS: Final = 128
MAX_VALUE_CHARS: Final = 256
TAG_KEY_PATTERN: Final = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+"
"""botocore's STS model ``tagKeyType`` pattern (Java syntax), exactly."""
TAG_VALUE_PATTERN: Final = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
"""botocore's STS model ``tagValueType`` pattern (Java syntax), exactly."""

_ASCII_TAG_TEXT: Final = re.compile(r"[A-Za-z0-9 _.:/=+\-@]*")
"""The patterns' ASCII members: letters (L), digits (N), the space (Z) and ``_.:/=+-@``."""


class TagError(ValueError):
    """Tags that AWS would refuse; the message says which rule, in AWS's words."""

    @property
    def message(self) -> str:
        """The refusal's text, for the caller's own AWS error."""
        return str(self)


@functools.cache
def _unicode_tag_text() -> re.Pattern[str]:
    return re.compile(translate_java_regex(TAG_VALUE_PATTERN), re.ASCII)


def _tag_text(text: str) -> bool:
    """Whether ``text`` is made of the Tag type's characters (empty text included)."""
    if text.isascii():
        return _ASCII_TAG_TEXT.fullmatch(text) is not None
    return _unicode_tag_text().fullmatch(text) is not None


def validate_tags(tags: Mapping[str, str], transitive_keys: Sequence[str] = ()) -> None:
    """Raise :class:`TagError` unless ``tags`` and ``transitive_keys`` follow AWS's rules."""
    if len(tags) > MAX_TAGS:
        raise TagError(
            f"A session can carry at most {MAX_TAGS} tags (got {len(tags)}). "
            "You can pass up to 50 session tags."
        )
    folded: set[str] = set()
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TagError("Session tag keys and values must be strings.")
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise TagError(
                f"Tag key {quoted(key)} failed to satisfy constraint: Member must have length "
                f"between 1 and {MAX_KEY_CHARS}."
            )
        if not _tag_text(key):
            raise TagError(
                f"Tag key {quoted(key)} failed to satisfy constraint: Member must satisfy "
                f"regular expression pattern: {TAG_KEY_PATTERN}"
            )
        if len(value) > MAX_VALUE_CHARS:
            raise TagError(
                f"The value of tag {quoted(key)} failed to satisfy constraint: Member must have "
                f"length less than or equal to {MAX_VALUE_CHARS}."
            )
        if not _tag_text(value):
            raise TagError(
                f"The value of tag {quoted(key)} failed to satisfy constraint: Member must "
                f"satisfy regular expression pattern: {TAG_VALUE_PATTERN}"
            )
        lowered = key.lower()
        if lowered.startswith("aws:"):
            raise TagError(f"Tag key {quoted(key)} is reserved: keys may not start with 'aws:'.")
        if lowered in folded:
            raise TagError(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive."
            )
        folded.add(lowered)
    if len(transitive_keys) > MAX_TAGS:
        raise TagError(f"At most {MAX_TAGS} transitive tag keys can be passed.")
    for key in transitive_keys:
        if not isinstance(key, str) or key.lower() not in folded:
            shown = quoted(key) if isinstance(key, str) else "a non-string key"
            raise TagError(f"Transitive tag key {shown} is not among the session tags passed.")
