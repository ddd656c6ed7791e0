"""Keep credentials out of other libraries' log records while the broker talks upstream.

The libraries the upstream clients use log more than a broker can afford to keep: at DEBUG
botocore logs the request it sends (the ``X-Amz-Security-Token`` header, the
``Authorization`` signature, a body with the ``WebIdentityToken``), the canonical request
and the response body (``SecretAccessKey``, ``SessionToken``); at INFO httpx logs every URL it
fetches, and a getSigninToken URL carries the session key and token in its query string. An
operator who turns on DEBUG to chase an upstream problem must not end up with credentials in
log storage.

So while an upstream call runs (:func:`guarding`), a filter on those libraries' loggers
replaces every record that names a credential field, or holds one of the secrets the call
knows, with a notice saying it was withheld. Outside such calls the filter lets everything
through untouched, so other code in the process that uses boto3 logs as it always did. The
scope is a context variable: it follows an ``await`` chain and is copied into the worker
thread a botocore call runs on.

A logger's filter sees only the records created on that very logger, not those propagated
from its children, so the filter is attached to every existing logger under
:data:`GUARDED_PREFIXES`, again each time a call starts (loggers created since are caught;
the scan is a few microseconds next to a network call).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

GUARDED_PREFIXES = ("botocore", "urllib3", "httpx", "httpcore")
"""The libraries between the broker and an upstream: botocore and its HTTP stack, httpx."""

MARKERS = (
    "secretaccesskey",
    "sessiontoken",
    "security-token",
    "securitytoken",
    "webidentitytoken",
    "authorization",
    "signature",
    "sessionkey",
    "signintoken",
)
"""Lower-case names whose presence in a record means it may carry a credential.

They catch what no list of known secrets can: the credentials an answer *returns* are
logged by botocore before the broker has seen them. ``signature`` also withholds botocore's
"Signature:" line, which is not a key but authenticates a replayable request.
"""

WITHHELD = "[withheld by sts-broker: a %s record during an upstream call may carry credentials]"

_active: ContextVar[frozenset[str] | None] = ContextVar("sts_broker_log_guard", default=None)


class _Withhold(logging.Filter):
    """Rewrites, never drops: a withheld line still shows that something happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _active.get()
        if secrets is None:
            return True
        text = _record_text(record)
        lowered = text.lower()
        if any(marker in lowered for marker in MARKERS) or any(s in text for s in secrets):
            record.msg = WITHHELD
            record.args = (record.name,)
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


_FILTER = _Withhold()


def _record_text(record: logging.LogRecord) -> str:
    try:
        parts = [record.getMessage()]
    except Exception:  # a record whose arguments do not fit its format: judge the raw parts
        parts = [str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.extend(traceback.format_exception(record.exc_info[1]))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def protect_loggers() -> None:
    """Attach the filter to every logger under :data:`GUARDED_PREFIXES` (idempotent)."""
    for prefix in GUARDED_PREFIXES:
        logging.getLogger(prefix)  # the library's root logger, even if not imported yet
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue  # a PlaceHolder: no records are ever created on it
        if name.split(".", 1)[0] in GUARDED_PREFIXES and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@contextmanager
def guarding(secrets: Iterable[str] = ()) -> Iterator[None]:
    """Withhold credential-bearing records from the guarded libraries within this block.

    ``secrets`` are strings known to the call (a web identity token, a session key) that
    must not appear even where no marker names them. Nested blocks are fine: the inner one
    adds its secrets for its own duration.
    """
    protect_loggers()
    outer = _active.get() or frozenset()
    token = _active.set(outer | {s for s in secrets if s})
    try:
        yield
    finally:
        _active.reset(token)
