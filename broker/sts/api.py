"""The STS Query API endpoint: HTTP in, AWS XML out, nothing else.

Order mirrors AWS: read the request (size, encoding), know the action, authenticate
signed actions (a revoked role session is refused there: :mod:`broker.identity.revocation`),
validate parameters against botocore's model, run the engine, render.
Every refusal is an :class:`~broker.errors.StsError` rendered as AWS's ``ErrorResponse``;
anything unexpected is logged with its request ID and answered ``InternalFailure`` without
detail, so no stack trace or secret ever reaches a client.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from broker.clock import Clock
from broker.directory import Directory
from broker.errors import StsError
from broker.identity import SessionRevocations, TokenSealer, authenticate
from broker.ids import request_id
from broker.sts.engine import RequestInfo, StsEngine
from broker.sts.model import StsModel
from broker.sts.protocol import read_query_request
from broker.sts.render import render_error

log = logging.getLogger("broker.access")


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
        revocations: SessionRevocations,
    ) -> None:
        self._model = model
        self._revocations = revocations
        self._engine = engine
        self._directory = directory
        self._sealer = sealer
        self._clock = clock
        self._region = region
        self._max_body = max_body_bytes
        self._signed = engine.signed_actions()
        self._unsigned = engine.unsigned

    async def handle(self, request: Request) -> Response:
        rid = request_id()
        started = time.perf_counter()
        action = "-"
        caller = "-"
        try:
            query = await read_query_request(request, max_body_bytes=self._max_body)
            action = query.action or "-"
            info = RequestInfo(
                now=self._clock.time(),
                source_ip=query.parts.client_ip,
                secure=request.scope.get("scheme") == "https",
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
            code = "OK"
        except StsError as exc:
            body, status, code = render_error(exc, rid), exc.status, exc.code
        except ClientDisconnect:
            # The client went away before its body arrived (or was cut off for being slow:
            # broker.web.connection_limits). Nobody reads this answer; it is no failure.
            failure = StsError("RequestTimeout", "The request body was not received.", 400)
            body, status, code = render_error(failure, rid), 400, "ClientDisconnected"
        except Exception:
            log.exception("request %s failed unexpectedly", rid)
            failure = StsError(
                "InternalFailure",
                "The request processing has failed because of an unknown error.",
                500,
                sender=False,
            )
            body, status, code = render_error(failure, rid), 500, failure.code
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
        return QueryAnswer(body, status, rid)


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

    def __init__(self, body: bytes, status_code: int, request_id: str) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"x-amzn-requestid", request_id.encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"text/xml; charset=utf-8"),
            (b"cache-control", b"no-store"),
        ]
