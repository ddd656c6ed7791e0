"""The identity pools endpoint: AWS's JSON 1.1 protocol in and out, nothing else.

Served at ``POST /`` beside the STS Query API (a request whose ``X-Amz-Target`` is
``AWSCognitoIdentityService.<Op>`` or whose ``Content-Type`` is
``application/x-amz-json-1.1`` comes here, see :func:`is_cognito_request`) and at
``/cognito-identity`` for clients given a separate endpoint URL. Order mirrors AWS: read the
request (size, media type, target, strict JSON), authenticate signed operations (SigV4 with
service ``cognito-identity``), validate against botocore's model, run the operation,
render. Every refusal is ``{"__type": CODE, "message": ...}`` with AWS's code; anything
unexpected is logged with its request ID and answered ``InternalErrorException`` without
detail.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from broker.clock import Clock
from broker.directory import Directory
from broker.errors import StsError, quoted
from broker.identity import TokenSealer, authenticate
from broker.ids import request_id
from broker.jsonread import JsonRefusedError, read_json
from broker.pools.model import JSON_CONTENT_TYPE, TARGET_PREFIX, CognitoModel, serialization_error
from broker.pools.service import PoolService
from broker.request import HttpRequestParts
from broker.sts.engine import RequestInfo
from broker.sts.protocol import read_request_parts

log = logging.getLogger("broker.access")

_AUTH_CODES: Final = {
    "MissingAuthenticationToken": "MissingAuthenticationTokenException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "IncompleteSignature": "IncompleteSignatureException",
    "ExpiredToken": "ExpiredTokenException",
    "ValidationError": "InvalidParameterException",
    "IDPRejectedClaim": "NotAuthorizedException",
    "Throttling": "TooManyRequestsException",
}
"""The lower layers' codes (SigV4, generic validation, a claim a template needs) as AWS's
JSON services name them."""


def is_cognito_request(request: Request) -> bool:
    """Whether a ``POST /`` is for this API rather than the STS Query API: its
    ``X-Amz-Target`` names this service, or (without one) its body is JSON 1.1."""
    target = content_type = b""
    for name, value in request.scope["headers"]:
        if name == b"x-amz-target":
            target = value
        elif name == b"content-type":
            content_type = value
    if target:
        return target.startswith(TARGET_PREFIX.encode() + b".")
    return content_type.split(b";")[0].strip() == JSON_CONTENT_TYPE.encode()


def _decode_object(raw: bytes) -> Any:
    """The broker's one bounded, strict JSON reader: UTF-8, no repeated member, no NaN,
    bounded depth (so no two parsers read it two ways, and no nesting ends as a 500)."""
    try:
        return read_json(raw, max_size=len(raw))  # the body's size is bounded already
    except JsonRefusedError as exc:
        raise serialization_error(f"The request body is not valid JSON ({exc.reason}).") from None


class CognitoApi:
    """A Starlette endpoint serving the identity pools operations the broker implements."""

    def __init__(
        self,
        *,
        model: CognitoModel,
        service: PoolService,
        directory: Directory,
        sealer: TokenSealer,
        clock: Clock,
        region: str,
        max_body_bytes: int,
    ) -> None:
        self._model = model
        self._service = service
        self._directory = directory
        self._sealer = sealer
        self._clock = clock
        self._region = region
        self._max_body = max_body_bytes

    async def handle(self, request: Request) -> Response:
        rid = request_id()
        started = time.perf_counter()
        name = "-"
        try:
            parts = await read_request_parts(request, max_body_bytes=self._max_body)
            name = _target(parts)
            body, status, code = await self._answer(name, parts, request), 200, "OK"
        except StsError as exc:
            code = _AUTH_CODES.get(exc.code, exc.code)
            status = 500 if code == "InternalErrorException" else 400
            body = json.dumps({"__type": code, "message": exc.message}).encode()
        except Exception:
            log.exception("request %s failed unexpectedly", rid)
            code, status = "InternalErrorException", 500
            body = json.dumps({"__type": code, "message": "An internal error occurred."}).encode()
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s cognito-identity:%s %d %s %.1fms",
                rid,
                name,
                status,
                code,
                (time.perf_counter() - started) * 1000,
            )
        return Response(
            body,
            status,
            headers={"x-amzn-RequestId": rid, "Cache-Control": "no-store"},
            media_type=JSON_CONTENT_TYPE,
        )

    async def _answer(self, name: str, parts: HttpRequestParts, request: Request) -> bytes:
        if parts.method != "POST":
            raise serialization_error("The identity pools API takes POST requests only.")
        content_type = (parts.header("content-type") or "").split(";")[0].strip()
        if content_type != JSON_CONTENT_TYPE:
            raise serialization_error(f"Send the request as {JSON_CONTENT_TYPE}.")
        operation = self._model.operation(name)
        unsigned = self._service.unsigned.get(name)
        signed = self._service.signed.get(name)
        if operation is None or (unsigned is None and signed is None):
            raise StsError(
                "UnknownOperationException",
                f"The broker does not serve {quoted(name, 64)}; identity pools are defined in "
                "its config, and it serves GetId, GetCredentialsForIdentity, GetOpenIdToken, "
                "GetOpenIdTokenForDeveloperIdentity, GetIdentityPoolRoles and "
                "DescribeIdentityPool.",
                400,
            )
        body = _decode_object(parts.body) if parts.body else {}
        info = RequestInfo(
            now=self._clock.time(),
            source_ip=parts.client_ip,
            secure=request.scope.get("scheme") == "https",
        )
        if signed is not None:
            caller = authenticate(
                parts,
                directory=self._directory,
                sealer=self._sealer,
                now=info.now,
                region=self._region,
                service="cognito-identity",
            )
            result = await signed(self._model.parse_input(operation, body), caller, info)
        else:
            assert unsigned is not None
            result = await unsigned(self._model.parse_input(operation, body), info)
        return self._model.render(operation, result)


def _target(parts: HttpRequestParts) -> str:
    target = parts.header("x-amz-target") or ""
    prefix, dot, name = target.partition(".")
    if prefix != TARGET_PREFIX or not dot or not name:
        raise StsError(
            "UnknownOperationException",
            f"X-Amz-Target must be {TARGET_PREFIX}.<Operation> (got {quoted(target, 80)}).",
            400,
        )
    return name
