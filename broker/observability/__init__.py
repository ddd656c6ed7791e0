"""What the broker tells its operators: metrics, readiness, the audit trail, its log lines.

A package low in the layers (it imports only the small shared values), so the identity
adapters and the store report into it without reaching the web layer, and the web layer
serves what it gathered (``/metrics``, ``/readyz``).
"""

from __future__ import annotations

from broker.observability.audit import AuditSink, AuditTrail, RequestFacts, open_sinks, subscribe
from broker.observability.context import (
    RequestContext,
    current_request,
    current_request_id,
    note_outcome,
)
from broker.observability.logs import LogFormat, configure_logging, uvicorn_log_config
from broker.observability.metrics import (
    count_throttled,
    exposition,
    prepare_multiprocess_dir,
    record_idp_fetch,
    record_store,
    worker_exit,
)
from broker.observability.readiness import Check, readiness

__all__ = [
    "AuditSink",
    "AuditTrail",
    "Check",
    "LogFormat",
    "RequestContext",
    "RequestFacts",
    "configure_logging",
    "count_throttled",
    "current_request",
    "current_request_id",
    "exposition",
    "note_outcome",
    "open_sinks",
    "prepare_multiprocess_dir",
    "readiness",
    "record_idp_fetch",
    "record_store",
    "subscribe",
    "uvicorn_log_config",
    "worker_exit",
]
