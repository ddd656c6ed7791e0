"""Protect a resource server's routes with one IAM permission, in a few lines.

The client sends its proof (a presigned ``GetCallerIdentity`` URL for the broker) in the
``X-Sts-Broker-Proof`` header; this middleware asks the broker whether that principal may do
``action`` on ``resource`` and only then lets the request through, with
``request.state.principal`` set. It never holds credentials and never decides by itself:
no proof is 401, a refused proof is 401, a deny is 403 carrying the encoded authorization
message, and a broker that cannot be asked is 503 (fail closed).

Wrap a whole app (``Middleware(RequireIamPermission, ...)``) or a single route
(``Route("/doc/{name}", RequireIamPermission(endpoint, ...))``, where ``path_params`` are
already known to the ``resource`` callable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.authz.client import AuthzClient, AuthzError

__all__ = ["PROOF_HEADER", "RequireIamPermission"]

PROOF_HEADER = "X-Sts-Broker-Proof"

ResourceOf = Callable[[Request], str]
ContextOf = Callable[[Request], Mapping[str, str | Sequence[str]]]


class RequireIamPermission:
    """ASGI middleware: let a request through only if the broker allows ``action``.

    ``resource`` is an ARN, or a callable that derives it from the request. ``context``
    optionally adds condition keys (``aws:SourceIp`` and ``aws:SecureTransport`` are set
    from the client's connection to this server).
    """

    def __init__(
        self,
        app: ASGIApp,
        broker_url: str,
        *,
        action: str,
        resource: str | ResourceOf,
        context: ContextOf | None = None,
        header: str = PROOF_HEADER,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._app = app
        self._action = action
        self._resource = resource
        self._context = context
        self._header = header
        self._client = AuthzClient(broker_url, http)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        proof = request.headers.get(self._header)
        if not proof:
            await _refuse(
                401,
                "MissingAuthenticationToken",
                f"Send a presigned GetCallerIdentity URL in the {self._header} header",
            )(scope, receive, send)
            return
        resource = self._resource if isinstance(self._resource, str) else self._resource(request)
        context: dict[str, str | Sequence[str]] = (
            dict(self._context(request)) if self._context else {}
        )
        if request.client is not None:
            context["aws:SourceIp"] = request.client.host
        context["aws:SecureTransport"] = "true" if request.url.scheme == "https" else "false"
        try:
            outcome = await self._client.check(proof, self._action, resource, context)
        except AuthzError as exc:
            # The broker refused the proof (or it could not be asked): no decision was made.
            status = 503 if exc.status >= 500 else 401
            await _refuse(status, exc.code, exc.message)(scope, receive, send)
            return
        if not outcome.allowed:
            message = (
                f"User: {outcome.principal.arn} is not authorized to perform: {self._action} "
                f"on resource: {resource} because {outcome.reason}"
            )
            await _refuse(403, "AccessDenied", message, outcome.encoded_message)(
                scope, receive, send
            )
            return
        request.state.principal = outcome.principal
        await self._app(scope, receive, send)


def _refuse(
    status: int, code: str, message: str, encoded_message: str | None = None
) -> JSONResponse:
    body: dict[str, object] = {"error": {"code": code, "message": message}}
    if encoded_message is not None:
        body["encoded_message"] = encoded_message
    headers = {"WWW-Authenticate": "X-Sts-Broker-Proof"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)
