"""Where the broker may send a browser next: its own allow-listed paths, nothing else.

``return_to`` values arrive from the browser (query strings, RelayState), so every one is an
open-redirect attempt until proven otherwise. Browsers are generous readers of URLs:
``//evil.com`` and ``/\\evil.com`` are other hosts, tabs and newlines inside a URL are
dropped, and ``%2F`` may be decoded by some hop on the way. Rather than predict each
reading, the accepted grammar is small enough that no reading of it leaves the broker:

- a path of ``A-Z a-z 0-9 - . _ ~ + = , @`` and ``/``, starting with exactly one ``/``,
  with no empty, ``.`` or ``..`` segments and no percent-escapes (role names, account
  aliases and the broker's routes need none);
- optionally ``?`` and a query of the same characters plus ``& %`` (the query can't change
  where the browser goes); no fragment;
- equal to an allow-listed prefix, or below it (``/roles`` admits ``/roles/Dev`` but not
  ``/roles-evil``).

Anything else becomes ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_MAX_LENGTH = 2048
_PATH = re.compile(r"/[A-Za-z0-9\-._~+=,@/]*", re.ASCII)
_QUERY = re.compile(r"[A-Za-z0-9\-._~+=,@/&%]*", re.ASCII)
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FALLBACK = "/"

RETURN_PREFIXES = ("/roles", "/cli")
"""Where a login (SAML, OIDC) may send the browser afterwards: the role picker and the CLI
hand-off pages. The credentials page is not here: it is only ever the answer to a POST."""
DEFAULT_RETURN = "/roles"


def safe_return_to(value: object, allowed_prefixes: Sequence[str]) -> str:
    """``value`` when it is one of the broker's own allow-listed paths, else ``"/"``."""
    if not isinstance(value, str) or not value or len(value) > _MAX_LENGTH:
        return _FALLBACK
    path, sep, query = value.partition("?")
    if not _PATH.fullmatch(path) or (sep and not _QUERY.fullmatch(query)):
        return _FALLBACK
    if _ESCAPE.search(query):
        return _FALLBACK
    segments = path.split("/")[1:]
    if path != "/" and any(segment in ("", ".", "..") for segment in segments[:-1]):
        return _FALLBACK
    if segments[-1] in (".", ".."):
        return _FALLBACK
    if not any(_below(path, prefix) for prefix in allowed_prefixes):
        return _FALLBACK
    return value


def _below(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or inside it; prefixes must themselves start with ``/``."""
    if not prefix.startswith("/"):
        return False
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def after_login(value: object) -> str:
    """Where a finished login lands: an allow-listed ``return_to``, else the role picker."""
    safe = safe_return_to(value, RETURN_PREFIXES)
    return safe if safe != _FALLBACK else DEFAULT_RETURN
