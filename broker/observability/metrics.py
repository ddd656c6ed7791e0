"""The broker's Prometheus metrics: one registry, low in the layers, so every stage can report.

The identity adapters (key fetches), the store (latency, errors), the STS API and the pages
(requests) all count into the metrics defined here, so this module imports nothing of the
broker but the clock: a fetch in ``identity/`` or a call in ``store/`` reports without
reaching up to the web layer.

**Bounded labels, no secrets.** A label value becomes a time series of its own, kept until
the process ends: a value a caller chooses (an access key ID, a subject, a made-up action)
would let anyone grow the broker's memory and the scraper's without end, and could carry
what must not leave the broker. So no label ever holds an identity, and every label value
goes through :class:`BoundedLabel`: STS actions must be names of the service model (the
API checks that before it reports), every label takes at most a fixed number of distinct
values (the label's ``limit``), and a value beyond it, or one that is not a short
identifier, is counted as ``Other``. The values
callers pass are code literals or configured names (issuer URLs, metadata sources), so the
cap is a guard, never a limit reached in practice.

**Several workers.** With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts,
prometheus_client keeps every value in memory-mapped files in that directory, one set per
process, and :func:`exposition` adds them up (:class:`MultiProcessCollector`), so any worker
answers ``/metrics`` for all of them. :func:`prepare_multiprocess_dir` is what ``serve``
calls before the workers start; :func:`worker_exit` when one stops. The key-set age is
derived at scrape time from the newest successful fetch across every worker.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

UNKNOWN_ACTION = "Unknown"
"""The ``action`` of an STS call naming no action of the model (answered ``InvalidAction``):
the STS API passes only names of botocore's model (``StsModel.actions()``), else this."""
OTHER = "Other"
SUCCESS = "Success"

IdpKind = Literal["oidc_discovery", "oidc_jwks", "saml_metadata"]
ThrottleScope = Literal["principal", "source_ip", "signin", "device_code"]
_THROTTLE_SCOPES = frozenset({"principal", "source_ip", "signin", "device_code"})
StoreOperation = Literal["claim", "get", "put", "delete", "take_token"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:/@+=,-]{1,200}")
"""What a label value may look like: identifiers, ARNs and URLs; never spaces or quotes."""


class BoundedLabel:
    """Admits at most ``limit`` distinct values for one label; anything past it is ``Other``.

    Thread-safe (the check and the insert happen under a lock): SQLite store calls report
    from worker threads.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if not _SAFE_VALUE.fullmatch(value):
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
        return value


REGISTRY = CollectorRegistry()
"""The broker's own registry (not prometheus_client's global one), read by :func:`exposition`."""
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_REQUESTS = Counter(
    "sts_broker_requests",
    "HTTP requests answered, by STS action (or route family) and outcome code.",
    ("action", "code"),
    registry=REGISTRY,
)
_LATENCY = Histogram(
    "sts_broker_request_duration_seconds",
    "Time from the request's arrival to its answer, by STS action (or route family).",
    ("action",),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_IDP_FETCHES = Counter(
    "sts_broker_idp_fetches",
    "Fetches of identity-provider documents (OIDC discovery and JWKS, SAML metadata).",
    ("kind", "idp", "outcome"),
    registry=REGISTRY,
)
_FETCHED_AT_NAME = "sts_broker_idp_keys_fetched_timestamp_seconds"
_IDP_FETCHED_AT = Gauge(
    _FETCHED_AT_NAME,
    "When an identity provider's keys (JWKS or SAML metadata) were last fetched successfully.",
    ("kind", "idp"),
    multiprocess_mode="max",
    registry=REGISTRY,
)
_STORE_LATENCY = Histogram(
    "sts_broker_store_operation_duration_seconds",
    "Time of one Store operation, failed ones included.",
    ("backend", "operation"),
    buckets=_STORE_BUCKETS,
    registry=REGISTRY,
)
_STORE_ERRORS = Counter(
    "sts_broker_store_errors",
    "Store operations that failed (backend unreachable, timed out, full).",
    ("backend", "operation"),
    registry=REGISTRY,
)
_THROTTLED = Counter(
    "sts_broker_throttled_requests",
    "Requests refused with Throttling, by action (or route family) and bucket scope.",
    ("action", "scope"),
    registry=REGISTRY,
)
_AUDIT_FAILURES = Counter(
    "sts_broker_audit_write_errors",
    "Audit events a sink could not write (the request was answered anyway).",
    ("sink",),
    registry=REGISTRY,
)
_INFO = Gauge(
    "sts_broker_info",
    "1 per live broker process, labelled with its version (summed over workers).",
    ("version",),
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

_route_or_action = BoundedLabel(64)
_code = BoundedLabel(128)
_idp = BoundedLabel(256)
_backend = BoundedLabel(8)
_sink = BoundedLabel(8)
_request_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def record_request(action: str, code: str, seconds: float) -> None:
    """One answered request: ``action`` an STS action or a route family, ``code`` the AWS
    error code (or another short code a page answered with) or :data:`SUCCESS`."""
    key = (action, code)
    children = _request_children.get(key)
    if children is None:
        bounded = (_route_or_action(action), _code(code))
        children = (_REQUESTS.labels(*bounded), _LATENCY.labels(bounded[0]))
        if len(_request_children) < 4096:
            _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def record_idp_fetch(kind: IdpKind, idp: str, *, ok: bool, at: float) -> None:
    """One fetch of an identity provider's document; ``at`` (the broker's clock) marks a
    successful key fetch, from which the key-set age is derived."""
    label = _idp(idp)
    _IDP_FETCHES.labels(kind, label, "success" if ok else "failure").inc()
    if ok and kind != "oidc_discovery":
        _IDP_FETCHED_AT.labels(kind, label).set(at)


_store_children: dict[tuple[str, str], Histogram] = {}
"""Latency children by (backend, operation): throttling meters two store calls per request,
and ``labels()`` costs more than the observation (bounded: a few backends, six operations)."""


def record_store(backend: str, operation: StoreOperation, seconds: float, *, ok: bool) -> None:
    """One Store operation and whether it failed."""
    key = (backend, operation)
    child = _store_children.get(key)
    if child is None:
        child = _STORE_LATENCY.labels(_backend(backend), operation)
        if len(_store_children) < 64:
            _store_children[key] = child
    child.observe(seconds)
    if not ok:
        _STORE_ERRORS.labels(_backend(backend), operation).inc()


def count_throttled(action: str, scope: ThrottleScope) -> None:
    """A request refused with ``Throttling``: call once per refusal.

    ``action`` is an STS action of the model (``StsModel.actions()``, never a name a
    caller chose) or a route family (``signin``, ``cli``); ``scope`` the bucket that ran
    dry. Both are bounded like every label (see the module doc).
    """
    _THROTTLED.labels(_route_or_action(action), scope if scope in _THROTTLE_SCOPES else OTHER).inc()


def count_audit_failure(sink: str) -> None:
    _AUDIT_FAILURES.labels(_sink(sink)).inc()


def mark_process_up(version: str) -> None:
    """This process serves (``sts_broker_info``); :func:`worker_exit` takes it back."""
    _INFO.labels(version).set(1)


# --------------------------------------------------------------------------- exposition


class _Families:
    """A registry-shaped list of already collected families, for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _key_ages(families: list[Metric], now: float) -> Metric:
    ages = GaugeMetricFamily(
        "sts_broker_idp_keys_age_seconds",
        "Seconds since an identity provider's keys were last fetched successfully.",
        labels=("kind", "idp"),
    )
    for family in families:
        if family.name != _FETCHED_AT_NAME:
            continue
        for sample in family.samples:
            labels = sample.labels
            ages.add_metric((labels["kind"], labels["idp"]), max(0.0, now - sample.value))
    return ages


def multiprocess_dir() -> str | None:
    """The shared directory when this process runs in multiprocess mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(now: float) -> bytes:
    """The ``/metrics`` body: this process's metrics, or every worker's in multiprocess mode.

    ``now`` is the broker's clock, the same one fetches were stamped with.
    """
    directory = multiprocess_dir()
    if directory is not None:
        source = CollectorRegistry()
        MultiProcessCollector(source, path=directory)  # type: ignore[no-untyped-call]
        families = list(source.collect())
    else:
        families = list(REGISTRY.collect())
    families.append(_key_ages(families, now))
    return generate_latest(_Families(families))  # type: ignore[arg-type,unused-ignore]


def prepare_multiprocess_dir(workers: int) -> Path | None:
    """Make the metrics directory ready before ``workers`` processes start; call it in the
    process that starts them, before it starts them.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, that directory is used (created if need be);
    with more than one worker and the variable unset, a fresh private directory is made
    and the variable set, so the workers inherit it. Files left by an earlier run are
    removed: their counts would be added to this run's. One worker and no variable: nothing
    to do (metrics stay in memory), None.
    """
    named = multiprocess_dir()
    if named is None and workers <= 1:
        return None
    path = Path(named) if named else Path(tempfile.mkdtemp(prefix="sts-broker-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in _metric_files(path):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _metric_files(path: Path) -> Iterator[Path]:
    return (p for p in path.glob("*.db") if p.is_file())


def worker_exit(pid: int) -> None:
    """Forget the live gauges of worker ``pid`` (call it when the worker has stopped, or
    from the worker itself as it stops); counters and histograms keep their counts."""
    directory = multiprocess_dir()
    if directory is not None:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(path: Path) -> None:
    """Delete a directory :func:`prepare_multiprocess_dir` made (after the workers stopped)."""
    shutil.rmtree(path, ignore_errors=True)
