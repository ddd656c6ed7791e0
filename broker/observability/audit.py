"""The audit trail: one JSON event per STS call and per sign-in step, shaped like CloudTrail's.

Operators already read, ship and alert on CloudTrail's STS events, so the broker writes
the same field names in the same nesting (``eventVersion``, ``userIdentity``, ``eventTime``,
``eventSource``, ``eventName``, ``requestParameters``, ``responseElements``, ...): the
queries written for AWS work on these lines too. ``docs/audit-event.schema.json`` is the
contract and ``docs/observability.md`` shows an example.

This module holds the envelope and the sinks; what goes into an event is decided by the
layers that know (:mod:`broker.sts.audit` for STS calls, :mod:`broker.web.audit` for the
browser), and they never hand it a secret: parameters and answers are copied through
allow-lists, so a new secret field is left out until someone adds it on purpose.

Sinks write one line per event with one ``write`` call on a descriptor opened with
``O_APPEND``, so the lines of several workers appending to one file never interleave. A
sink that fails (disk full) is counted (``sts_broker_audit_write_errors_total``) and
logged; the request is still answered, as with any log line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from broker.clock import Clock, iso8601
from broker.errors import shortened
from broker.ids import request_id
from broker.observability.metrics import count_audit_failure

log = logging.getLogger("broker.audit")

EVENT_VERSION = "1.08"
"""CloudTrail's record version whose field set these events follow."""
EventSource = Literal["sts.amazonaws.com", "signin.amazonaws.com"]
EventType = Literal["AwsApiCall", "AwsConsoleSignIn"]
_MAX_MESSAGE = 1024
_MAX_USER_AGENT = 512

Event = dict[str, Any]
Subscriber = Callable[[Mapping[str, Any]], None]
_subscribers: list[Subscriber] = []
_subscribers_lock = threading.Lock()


@dataclass(frozen=True)
class RequestFacts:
    """What every event says about the HTTP request it records."""

    source_ip: str
    user_agent: str
    request_id: str


class AuditSink(Protocol):
    name: str
    """``stdout`` or ``file``: the label of its write-error counter."""

    def write(self, line: bytes) -> None: ...

    def close(self) -> None: ...


class DescriptorSink:
    """Lines to an already open descriptor (standard output), never closed here."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name

    def write(self, line: bytes) -> None:
        os.write(self._fd, line)

    def close(self) -> None:
        """The descriptor belongs to the process."""


class FileSink:
    """Lines appended to a file (created ``0600``: events name who got which role)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(self, line: bytes) -> None:
        os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Also hand every event of every trail in this process to ``subscriber``; returns the
    function that stops it. For embedding (ship events elsewhere) and for tests, which
    check every event a run produced."""
    with _subscribers_lock:
        _subscribers.append(subscriber)

    def unsubscribe() -> None:
        with _subscribers_lock:
            if subscriber in _subscribers:
                _subscribers.remove(subscriber)

    return unsubscribe


class AuditTrail:
    """Writes events to its sinks (and subscribers); with neither, callers skip the work."""

    def __init__(self, sinks: Sequence[AuditSink], *, region: str, clock: Clock) -> None:
        self._sinks = tuple(sinks)
        self._region = region
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether an event would go anywhere: check before building one."""
        return bool(self._sinks or _subscribers)

    def emit(
        self,
        *,
        source: EventSource,
        name: str,
        event_type: EventType,
        facts: RequestFacts,
        user_identity: Mapping[str, Any],
        request_parameters: Mapping[str, Any] | None = None,
        response_elements: Mapping[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        additional: Mapping[str, Any] | None = None,
        resources: Sequence[Mapping[str, str]] = (),
        recipient_account: str | None = None,
    ) -> Event | None:
        """Write one event in CloudTrail's field order; returns it (None when disabled)."""
        if not self.enabled:
            return None
        event: Event = {
            "eventVersion": EVENT_VERSION,
            "userIdentity": dict(user_identity),
            "eventTime": iso8601(self._clock.time()),
            "eventSource": source,
            "eventName": name,
            "awsRegion": self._region,
            "sourceIPAddress": facts.source_ip,
            "userAgent": shortened(facts.user_agent, _MAX_USER_AGENT),
        }
        if error_code is not None:
            event["errorCode"] = error_code
        if error_message is not None:
            event["errorMessage"] = shortened(error_message, _MAX_MESSAGE)
        event["requestParameters"] = _copy(request_parameters)
        event["responseElements"] = _copy(response_elements)
        if additional:
            event["additionalEventData"] = dict(additional)
        event["requestID"] = facts.request_id
        event["eventID"] = request_id()
        if resources:
            event["resources"] = [dict(r) for r in resources]
        event["eventType"] = event_type
        if recipient_account:
            event["recipientAccountId"] = recipient_account
        self._write(event)
        return event

    def _write(self, event: Event) -> None:
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        for sink in self._sinks:
            try:
                sink.write(line)
            except OSError as exc:
                count_audit_failure(sink.name)
                log.warning("audit sink %s failed: %s", sink.name, exc.strerror or exc)
        for subscriber in tuple(_subscribers):
            subscriber(event)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()


def _copy(members: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if members is None else dict(members)


def open_sinks(*, stdout: bool, file: str | None) -> list[AuditSink]:
    """The configured sinks; :class:`OSError` when the file cannot be opened for appending."""
    sinks: list[AuditSink] = []
    if stdout:
        sinks.append(DescriptorSink(1, "stdout"))
    if file is not None:
        sinks.append(FileSink(Path(file)))
    return sinks
