"""The STS Query API endpoint: HTTP in, AWS XML out, nothing else.

Order mirrors AWS: read the request (size, encoding), know the action, spend a token of the
source address's bucket (before any signature or token is checked, so a flood of forgeries
stays cheap; the engine spends the principal's once it is proven), authenticate signed
actions (a revoked role session is refused there: :mod:`broker.identity.revocation`),
validate parameters against botocore's model, run the engine, render.
Every refusal is an :class:`~broker.errors.StsError` rendered as AWS's ``ErrorResponse``
(a ``Throttling`` one also says, in ``x-amz-retry-after``, how many milliseconds until the
bucket has a token: botocore's standard retry mode then waits that long, up to 5 s beyond
its own backoff, instead of guessing); a state store that cannot be reached is
``ServiceUnavailable`` (503), translated here, the one place the STS API does; anything
unexpected is logged with its request ID and answered ``InternalFailure`` without detail, so
no stack trace or secret ever reaches a client.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from broker.clock import Clock
from broker.directory import Directory
from broker.errors import StsError, service_unavailable
from broker.identity import Caller, SessionRevocations, TokenSealer, authenticate
from broker.identity.sigv4 import read_signature
from broker.observability import AuditTrail, current_request_id, note_outcome
from broker.observability.metrics import SUCCESS, UNKNOWN_ACTION
from broker.store import STORE_FAILURES
from broker.sts.audit import AuditFacts, record_call, request_facts
from broker.sts.engine import RequestInfo, StsEngine
from broker.sts.model import StsModel
from broker.sts.protocol import QueryRequest, read_query_request
from broker.sts.render import render_error
from broker.throttling import Throttle, Throttled

log = logging.getLogger("broker.access")
_KEY_SHAPE = re.compile(r"[A-Z0-9]{16,128}")


class StsApi:
    """A Starlette endpoint serving every STS action the broker knows."""

    def __init__(
        self,
        *,
        model: StsModel,
        engine: StsEngine,
        directory: Directory,
        sealer: TokenSealer,
        clock: Clock,
        region: str,
        max_body_bytes: int,
        audit: AuditTrail,
        revocations: SessionRevocations,
        throttle: Throttle | None = None,
    ) -> None:
        self._model = model
        self._audit = audit
        self._revocations = revocations
        self._throttle = throttle
        self._engine = engine
        self._directory = directory
        self._sealer = sealer
        self._clock = clock
        self._region = region
        self._max_body = max_body_bytes
        self._actions = model.actions()
        self._signed = engine.signed_actions()
        self._unsigned = engine.unsigned

    async def handle(self, request: Request) -> Response:
        rid = current_request_id()
        started = time.perf_counter()
        action = "-"
        caller = "-"
        who: Caller | None = None
        params: Mapping[str, Any] = {}
        facts = AuditFacts() if self._audit.enabled else None
        result: dict[str, Any] | None = None
        error: StsError | None = None
        query: QueryRequest | None = None
        retry_after_ms = 0
        try:
            query = await read_query_request(request, max_body_bytes=self._max_body)
            action = query.action or "-"
            params = query.params
            if self._throttle is not None:
                await self._throttle.source_ip(query.action, query.parts.client_ip)
            info = RequestInfo(
                now=self._clock.time(),
                source_ip=query.parts.client_ip,
                secure=request.scope.get("scheme") == "https",
                audit=facts,
            )
            if query.action in self._signed:
                who = authenticate(
                    query.parts,
                    directory=self._directory,
                    sealer=self._sealer,
                    now=info.now,
                    region=self._region,
                )
                caller = who.arn
                await self._revocations.check(who.claims)
                params = self._model.parse_input(query.action, query.params)
                result = await self._engine.call(query.action, params, who, info)
            elif query.action in self._unsigned:
                params = self._model.parse_input(query.action, query.params)
                result = await self._unsigned[query.action](params, info)
            else:
                self._model.parse_input(query.action, query.params)  # InvalidAction if unknown
                raise StsError(
                    "InvalidAction",
                    f"The action {query.action} is not supported by this broker.",
                )
            body = self._model.render_result(query.action, result, rid)
            status = 200
            code = SUCCESS
        except Throttled as exc:
            error = exc
            body, status, code = render_error(exc, rid), exc.status, exc.code
            retry_after_ms = max(1, math.ceil(exc.retry_after * 1000))
        except StsError as exc:
            error = exc
            body, status, code = render_error(exc, rid), exc.status, exc.code
        except STORE_FAILURES as exc:
            # Fail closed: a one-time value that cannot be checked is not accepted. Where the
            # store is and what failed goes to the log, not to the client.
            log.warning("request %s %s: state store unavailable: %s", rid, action, exc)
            error = service_unavailable()
            body, status, code = render_error(error, rid), error.status, error.code
        except ClientDisconnect:
            # The client went away before its body arrived (or was cut off for being slow:
            # broker.web.connection_limits). Nobody reads this answer; it is no failure.
            failure = StsError("RequestTimeout", "The request body was not received.", 400)
            error = failure
            body, status, code = render_error(failure, rid), 400, "ClientDisconnected"
        except Exception:
            log.exception("request %s failed unexpectedly", rid)
            error = StsError(
                "InternalFailure",
                "The request processing has failed because of an unknown error.",
                500,
                sender=False,
            )
            body, status, code = render_error(error, rid), 500, error.code
        label = action if action in self._actions else UNKNOWN_ACTION
        note_outcome(code, action=label)
        if facts is not None and query is not None and label != UNKNOWN_ACTION:
            record_call(
                self._audit,
                action=action,
                facts=request_facts(request, rid),
                params=params,
                caller=who,
                claimed_key=(
                    _claimed_key(query) if who is None and action in self._signed else None
                ),
                verified=facts.verified,
                result=result if error is None else None,
                error=None if error is None else (error.code, error.message),
            )
        if log.isEnabledFor(logging.INFO):  # the access line; off in the bench, on by default
            log.info(
                "%s %s %s %d %s %.1fms",
                rid,
                action,
                caller,
                status,
                code,
                (time.perf_counter() - started) * 1000,
            )
        return QueryAnswer(body, status, rid, retry_after_ms=retry_after_ms)


def _claimed_key(query: QueryRequest) -> str | None:
    """The access key ID an unauthenticated signed call claimed, if it has AWS's shape
    (the audit event of a refused call records who it pretended to be)."""
    try:
        claim = read_signature(query.parts)
    except StsError:
        return None
    key = claim.access_key_id if claim is not None else ""
    return key if _KEY_SHAPE.fullmatch(key) else None


class QueryAnswer(Response):
    """An STS answer: AWS's XML, its request ID header and ``Cache-Control: no-store``.

    The API says ``no-store`` itself: its answers carry credentials, and no proxy or browser
    may keep them, whether or not the browser sign-in's page middleware wraps it (that one
    leaves a ``Cache-Control`` the app set alone). The header list is written out directly,
    in the order Starlette's ``Response`` plus that middleware produced (request ID, length,
    type, cache control), without ``Response.__init__``'s generic header pass: every API
    request pays for this object.
    """

    media_type = "text/xml"

    def __init__(
        self, body: bytes, status_code: int, request_id: str, *, retry_after_ms: int = 0
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"x-amzn-requestid", request_id.encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"text/xml; charset=utf-8"),
            (b"cache-control", b"no-store"),
        ]
        if retry_after_ms:
            self.raw_headers.append((b"x-amz-retry-after", str(retry_after_ms).encode()))
