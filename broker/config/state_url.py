"""The grammar of the ``state:`` value: which backend, and for Redis, where and as whom.

It lives with the config because a wrong URL is a config mistake: the loader must report
it as ``file:line: state: reason`` before anything starts, and the Redis store then opens
the very address this parser produced, so the file and the store can never disagree on
what a URL means.

The password is the one secret here. It usually arrives through ``${VAR}`` substitution,
so no message may quote a piece of the URL that could hold it: :func:`parse_redis_url`
quotes only the port and database (after the host part has been cut off at its ``@``), and
:func:`masked` hides everything before an ``@`` for any other message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

REDIS_SCHEMES = ("redis", "rediss", "valkey", "valkeys")
"""URL schemes of the Redis (or Valkey) backend; the ``s`` forms use TLS."""
TLS_SCHEMES = ("rediss", "valkeys")
"""The schemes that connect over TLS."""
_DEFAULT_PORT = 6379


@dataclass(frozen=True)
class RedisAddress:
    """A parsed Redis URL; ``password`` never shows in ``repr``."""

    scheme: str
    host: str
    port: int
    db: int
    username: str | None
    password: str | None = field(repr=False)

    @property
    def tls(self) -> bool:
        return self.scheme in TLS_SCHEMES

    @property
    def where(self) -> str:
        """``host:port`` (``[v6]:port``): what errors and logs name."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def shown(self) -> str:
        """The URL with the password masked: safe in logs, errors and repr."""
        user = self.username or ""
        auth = f"{user}:***@" if self.password else ""
        return f"{self.scheme}://{auth}{self.where}/{self.db}"


def is_redis_url(state: str) -> bool:
    """Whether ``state`` names the Redis backend (it may still be malformed)."""
    return state.partition("://")[0] in REDIS_SCHEMES


def masked(state: str) -> str:
    """``state`` with anything before an ``@`` masked: a mistyped URL may still hold a password."""
    head, at, tail = state.rpartition("@")
    if not at:
        return state
    scheme, sep, _ = head.partition("://")
    return f"{scheme}://***@{tail}" if sep else f"***@{tail}"


def _invalid(problem: str) -> ValueError:
    return ValueError(f"invalid Redis URL: {problem}")


def parse_redis_url(url: str) -> RedisAddress:
    """Check ``url`` piece by piece; a message quotes only pieces that cannot hold the password.

    ``redis://[user:password@]host[:port][/db]``; user name and password percent-encoded.
    Raises ValueError saying what to change.
    """
    scheme, sep, after = url.partition("://")
    if not sep or scheme not in REDIS_SCHEMES:
        raise _invalid("it must start with redis://, rediss://, valkey:// or valkeys://")
    end = min((i for i in map(after.find, "/?#") if i >= 0), default=len(after))
    netloc, rest = after[:end], after[end:]
    if "@" in rest:
        # A raw '/', '?' or '#' in the password cut the host part short: quote none of it.
        raise _invalid("percent-encode '/', '?', '#' and '@' in the user name and password")
    if "?" in rest or "#" in rest:
        raise _invalid("options after '?' or '#' are not supported")
    userinfo, _, hostinfo = netloc.rpartition("@")
    if hostinfo.startswith("["):
        host, _, port_text = hostinfo[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = hostinfo.partition(":")
    if not host:
        raise _invalid("it names no host (as in redis://host:6379/0)")
    port = _DEFAULT_PORT
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()):
            # Not quoted: in 'redis://user:secret' (the '@host' forgotten) this is the password.
            raise _invalid(
                "the port must be a number from 1 to 65535 (got text that is not a number; "
                "if it is a password, the '@host' after it is missing)"
            )
        if not 1 <= int(port_text) <= 65535:
            raise _invalid(f"the port must be a number from 1 to 65535 (got {port_text!r})")
        port = int(port_text)
    db_text = rest.removeprefix("/")
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        raise _invalid(
            f"the database must be a number, as in redis://host:6379/0 (got {db_text!r})"
        )
    user_text, has_password, password_text = userinfo.partition(":")
    username = unquote(user_text) or None
    password = unquote(password_text) if has_password and password_text else None
    if username and password is None:
        raise _invalid(
            "a user name needs a password (redis://user:password@host); "
            "for a password alone write redis://:password@host"
        )
    return RedisAddress(
        scheme=scheme,
        host=host,
        port=port,
        db=int(db_text or "0"),
        username=username,
        password=password,
    )
