"""The authorization API over HTTP: JSON in, JSON out, AWS's error codes and statuses.

``POST /authz/check`` answers "may the caller do this action to this resource?". The caller
is proved one of two ways:

- **SigV4**: the check request itself is signed with the caller's credentials, scoped to the
  broker's region and service ``sts`` (any AWS SDK signer does this; the signature covers
  the path and body, so it can never be replayed as an STS call or another check). It is
  verified by :func:`broker.identity.caller.authenticate`, exactly as an STS action is.
- **Presigned proof**: the body carries ``{"proof": {"presigned_url": ...}}``, a
  ``GetCallerIdentity`` URL the client presigned for this broker (the Vault /
  aws-iam-authenticator pattern). The resource server forwarding it holds no credentials
  and is not trusted: the URL is verified as if it had arrived at the STS endpoint (GET,
  this broker's host, ``Action=GetCallerIdentity`` only, ``X-Amz-Expires`` honoured).
  The proof names the client, and the resource server supplies ``aws:SourceIp`` /
  ``aws:SecureTransport`` for the client's own connection in ``context``.

``POST /authz/decode`` opens an encoded authorization message for a SigV4-signed caller
allowed ``sts:DecodeAuthorizationMessage``. A presigned proof is refused there: a bearer
proof handed to a resource server lets it ask about the client, not act as the client.

Every refusal is JSON ``{"error": {"code", "message"}, "request_id"}``; nothing unexpected
escapes as a stack trace (it is logged and answered ``InternalFailure``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from broker.authz.service import AuthzService, CheckResult
from broker.clock import Clock, iso8601
from broker.directory import Directory
from broker.errors import StsError, access_denied, validation_error
from broker.iam import ContextValue
from broker.identity import Caller, SessionRevocations, TokenSealer, authenticate
from broker.ids import request_id
from broker.jsonread import JsonRefusedError, read_json
from broker.request import HttpRequestParts
from broker.sts.messages import MAX_MESSAGE_CHARS
from broker.sts.protocol import parse_query_request

__all__ = ["MAX_PROOF_CHARS", "AuthzApi", "openapi_document"]

log = logging.getLogger("broker.access")

REVOKE_PATH = "/admin/revoke-sessions"
REVOKE_ACTION = "sts-broker:RevokeSessions"
"""The permission the admin API asks of its caller, on the role ARN as the resource."""
MAX_PROOF_CHARS = 16384
"""A presigned URL with the largest session token the broker seals fits well within this."""
DEFAULT_MAX_BODY_BYTES = 65536
_JSON = "application/json"
_STS_PATHS = ("/", "/sts")
_CHECK_FIELDS = frozenset({"action", "resource", "context", "proof"})
_CONNECTION_KEYS = {"aws:sourceip": "aws:SourceIp", "aws:securetransport": "aws:SecureTransport"}


@dataclass(frozen=True)
class _Proved:
    """Who is asking, and what is known about the client's connection."""

    caller: Caller
    source_ip: str
    secure: bool
    context: Mapping[str, ContextValue]


class AuthzApi:
    """Starlette endpoints for checks, decoding and the OpenAPI document."""

    def __init__(
        self,
        *,
        service: AuthzService,
        directory: Directory,
        sealer: TokenSealer,
        clock: Clock,
        region: str,
        public_url: str,
        revocations: SessionRevocations,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        extra_hosts: tuple[str, ...] = (),
    ) -> None:
        """``public_url`` (and ``extra_hosts``, ``host[:port]``) are the names a presigned
        proof may be addressed to: this broker's, so a URL presigned for anyone else is
        refused."""
        self._service = service
        self._revocations = revocations
        self._directory = directory
        self._sealer = sealer
        self._clock = clock
        self._region = region
        self._max_body = max_body_bytes
        public = urlsplit(public_url)
        self._hosts = frozenset(
            _authority(public.scheme, host) for host in (public.netloc, *extra_hosts)
        )
        prefix = public.path.rstrip("/")
        self._paths = frozenset(_STS_PATHS) | {prefix + p for p in _STS_PATHS}
        self._server_url = public_url.rstrip("/")

    def routes(self) -> list[BaseRoute]:
        """The routes to add to the broker's app."""
        return [
            Route("/authz/check", self._wrap("check", self._check), methods=["POST"]),
            Route("/authz/decode", self._wrap("decode", self._decode), methods=["POST"]),
            Route("/authz/openapi.json", self._openapi, methods=["GET"]),
            Route(REVOKE_PATH, self._wrap("revoke-sessions", self._revoke), methods=["POST"]),
        ]

    # -- endpoints -------------------------------------------------------------------------

    async def _check(self, request: Request) -> tuple[dict[str, Any], str]:
        body, raw = await self._json_body(request)
        _refuse_unknown(body, _CHECK_FIELDS)
        action = _string(body, "action")
        resource = _string(body, "resource")
        context = _context(body.get("context", {}))
        proved = self._prove(request, raw, body, context)
        await self._revocations.check(proved.caller.claims)
        result = self._service.check(
            proved.caller,
            action,
            resource,
            proved.context,
            source_ip=proved.source_ip,
            secure=proved.secure,
        )
        return _check_answer(proved.caller, result), proved.caller.arn

    async def _decode(self, request: Request) -> tuple[dict[str, Any], str]:
        body, raw = await self._json_body(request)
        _refuse_unknown(body, frozenset({"encoded_message"}))
        message = body.get("encoded_message")
        if not isinstance(message, str) or not 1 <= len(message) <= MAX_MESSAGE_CHARS:
            raise validation_error(
                f"encoded_message must be a string of 1 to {MAX_MESSAGE_CHARS} characters"
            )
        caller = self._signed_caller(request, raw)
        await self._revocations.check(caller.claims)
        decoded = self._service.decode(
            caller,
            message,
            source_ip=request.client.host if request.client else "",
            secure=request.url.scheme == "https",
        )
        return {"decoded_message": decoded}, caller.arn

    async def _revoke(self, request: Request) -> tuple[dict[str, Any], str]:
        """``POST /admin/revoke-sessions`` ``{"role_arn": ARN}``: deny the role's sessions
        issued up to now (:mod:`broker.identity.revocation`). SigV4 only, and the caller's
        policies must allow ``sts-broker:RevokeSessions`` on the role."""
        body, raw = await self._json_body(request)
        _refuse_unknown(body, frozenset({"role_arn"}))
        role_arn = _string(body, "role_arn")
        caller = self._signed_caller(request, raw)
        await self._revocations.check(caller.claims)
        source_ip = request.client.host if request.client else ""
        result = self._service.check(
            caller,
            REVOKE_ACTION,
            role_arn,
            {},
            source_ip=source_ip,
            secure=request.url.scheme == "https",
        )
        if not result.allowed:
            raise access_denied(
                f"User: {caller.arn} is not authorized to perform: {REVOKE_ACTION} on resource: "
                f"{role_arn} because {result.reason}"
            )
        if self._directory.role(role_arn) is None:
            raise validation_error(f"The role {role_arn} is not in the broker's config.")
        revocation = await self._revocations.revoke(role_arn)
        log.warning(
            "sessions of %s issued up to %d revoked by %s", role_arn, revocation.before, caller.arn
        )
        return {
            "role_arn": role_arn,
            "revoked_up_to": iso8601(revocation.before),
        }, caller.arn

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self._server_url))

    # -- plumbing --------------------------------------------------------------------------

    def _wrap(
        self, name: str, handler: Callable[[Request], Awaitable[tuple[dict[str, Any], str]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            rid = request_id()
            started = time.perf_counter()
            caller = "-"
            try:
                answer, caller = await handler(request)
                status, code = 200, "OK"
            except StsError as exc:
                answer, status, code = _error(exc, rid), exc.status, exc.code
            except Exception:
                log.exception("request %s failed unexpectedly", rid)
                status, code = 500, "InternalFailure"
                failure = StsError(
                    code, "The request processing has failed because of an unknown error.", 500
                )
                answer = _error(failure, rid)
            log.info(
                "%s authz:%s %s %d %s %.1fms",
                rid,
                name,
                caller,
                status,
                code,
                (time.perf_counter() - started) * 1000,
            )
            return JSONResponse(answer, status_code=status, headers={"x-amzn-RequestId": rid})

        return endpoint

    async def _json_body(self, request: Request) -> tuple[dict[str, Any], bytes]:
        """The body as a JSON object and as the raw bytes the signature covers, read no
        further than the size limit."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != _JSON:
            raise StsError("UnsupportedMediaType", f"Send the request as {_JSON}", 415)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            raise _too_large(self._max_body)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise _too_large(self._max_body)
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            body = read_json(raw, max_size=self._max_body)
        except JsonRefusedError as exc:
            raise validation_error(f"The request body {exc.reason}") from None
        if not isinstance(body, dict):
            raise validation_error("The request body must be a JSON object")
        return body, raw

    def _prove(
        self,
        request: Request,
        raw: bytes,
        body: Mapping[str, Any],
        context: dict[str, ContextValue],
    ) -> _Proved:
        if "proof" not in body:
            # The asker is the caller: what the broker sees of the connection is the truth,
            # and the caller may not restate it (it could claim another source address).
            for folded, key in _CONNECTION_KEYS.items():
                if any(k.lower() == folded for k in context):
                    raise validation_error(
                        f"context key {key} is taken from the connection for a signed check"
                    )
            caller = self._signed_caller(request, raw)
            source_ip = request.client.host if request.client else ""
            return _Proved(caller, source_ip, request.url.scheme == "https", context)
        if request.headers.get("authorization") is not None or "X-Amz-" in request.url.query:
            raise validation_error("Prove the caller with a signature or a proof, not both")
        proof = body["proof"]
        if not isinstance(proof, dict):
            raise validation_error("proof must be an object with presigned_url")
        _refuse_unknown(proof, frozenset({"presigned_url"}), where="proof")
        url = proof.get("presigned_url")
        if not isinstance(url, str) or not 1 <= len(url) <= MAX_PROOF_CHARS:
            raise validation_error(
                f"proof.presigned_url must be a string of 1 to {MAX_PROOF_CHARS} characters"
            )
        caller = self._proof_caller(url)
        # The resource server knows the client's connection; the broker only sees its own.
        rest = dict(context)
        source_ip = _pop_connection(rest, "aws:sourceip")
        secure = _pop_connection(rest, "aws:securetransport")
        if source_ip:
            try:
                ipaddress.ip_address(source_ip)
            except ValueError:
                raise validation_error("context key aws:SourceIp must be an IP address") from None
        if secure not in ("", "true", "false"):
            raise validation_error("context key aws:SecureTransport must be true or false")
        return _Proved(caller, source_ip, secure == "true", rest)

    def _signed_caller(self, request: Request, body: bytes) -> Caller:
        scope = request.scope
        raw_path = scope.get("raw_path")
        path = (
            raw_path.decode("latin-1") if isinstance(raw_path, bytes) else quote(request.url.path)
        )
        parts = HttpRequestParts(
            method=request.method,
            path=path,
            query_string=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=body,
            client_ip=request.client.host if request.client else "",
        )
        return self._authenticate(parts)

    def _proof_caller(self, url: str) -> Caller:
        """Verify a presigned GetCallerIdentity URL as the STS endpoint would verify it."""
        if not url.isascii() or any(c.isspace() for c in url):
            raise validation_error("proof.presigned_url must be a percent-encoded URL")
        try:
            split = urlsplit(url)
            split.port  # noqa: B018 -- a malformed port raises here, not later
        except ValueError:
            raise validation_error("proof.presigned_url is not a valid URL") from None
        if split.scheme not in ("http", "https") or not split.hostname or "@" in split.netloc:
            raise validation_error("proof.presigned_url must be an http(s) URL with a host")
        if split.fragment:
            raise validation_error("proof.presigned_url must not have a fragment")
        if _authority(split.scheme, split.netloc) not in self._hosts:
            raise access_denied("The proof was presigned for another host, not this broker")
        path = split.path or "/"
        if path not in self._paths:
            raise access_denied("The proof must be presigned for this broker's STS endpoint")
        parts = HttpRequestParts(
            method="GET",
            path=path,
            query_string=split.query,
            headers=[("host", split.netloc)],
            body=b"",
        )
        query = parse_query_request(parts)
        if query.action != "GetCallerIdentity":
            raise access_denied("The proof must be a presigned GetCallerIdentity request")
        # Only host is sent, so the one signature authenticate() can find is the query's.
        return self._authenticate(parts)

    def _authenticate(self, parts: HttpRequestParts) -> Caller:
        return authenticate(
            parts,
            directory=self._directory,
            sealer=self._sealer,
            now=self._clock.time(),
            region=self._region,
        )


def _authority(scheme: str, netloc: str) -> str:
    """``host[:port]`` lower-cased, with the scheme's default port dropped (botocore does)."""
    folded = netloc.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return folded[: -len(default)] if default and folded.endswith(default) else folded


def _pop_connection(context: dict[str, ContextValue], folded: str) -> str:
    for key in list(context):
        if key.lower() == folded:
            value = context.pop(key)
            if not isinstance(value, str):
                raise validation_error(f"context key {key} takes a single value")
            return value
    return ""


def _too_large(limit: int) -> StsError:
    return StsError("RequestEntityTooLarge", f"The request body exceeds {limit} bytes", 413)


def _refuse_unknown(body: Mapping[str, Any], known: frozenset[str], where: str = "body") -> None:
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        shown = ", ".join(repr(k[:64]) for k in unknown[:5])
        raise validation_error(f"Unknown field(s) in the {where}: {shown}")


def _string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise validation_error(f"{name} is required and must be a string")
    return value


def _context(raw: object) -> dict[str, ContextValue]:
    """``{"key": "value" | ["v1", "v2"]}``; sizes and reserved keys are the service's check."""
    if not isinstance(raw, dict):
        raise validation_error("context must be an object of condition keys")
    out: dict[str, ContextValue] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = tuple(value)
        else:
            raise validation_error(
                f"context key {key[:64]!r}: a value is a string or a list of strings"
            )
    return out


def _check_answer(caller: Caller, result: CheckResult) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "allowed": result.allowed,
        "principal": {"arn": caller.arn, "account": caller.account, "user_id": caller.user_id},
        # Which statements denied is privileged (that is what the encoded message is for);
        # the statements that allowed are what an auditor of the grant needs.
        "matched": [
            {"policy": m.policy, "statement_index": m.index, "sid": m.sid, "effect": m.effect}
            for m in result.matched
        ]
        if result.allowed
        else [],
        "reason": result.reason,
    }
    if result.encoded_message is not None:
        answer["encoded_message"] = result.encoded_message
    return answer


def _error(exc: StsError, rid: str) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}, "request_id": rid}


def openapi_document(server_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 description of the authorization API (served at
    ``/authz/openapi.json``), built here so it cannot drift from the limits in code."""
    error = {"$ref": "#/components/schemas/Error"}

    def refusal(description: str) -> dict[str, Any]:
        return {"description": description, "content": {_JSON: {"schema": error}}}

    errors = {
        "400": refusal("ValidationError, IncompleteSignature, InvalidAction"),
        "403": refusal(
            "MissingAuthenticationToken, SignatureDoesNotMatch, InvalidClientTokenId, "
            "ExpiredToken, AccessDenied (proof for another host or action)"
        ),
        "413": refusal("RequestEntityTooLarge"),
        "415": refusal("UnsupportedMediaType"),
    }
    context_value = {
        "oneOf": [
            {"type": "string", "maxLength": 1024},
            {"type": "array", "items": {"type": "string", "maxLength": 1024}, "maxItems": 64},
        ]
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "sts-broker authorization API",
            "version": "1",
            "description": (
                "Ask whether an authenticated AWS-style principal may perform an IAM action "
                "on a resource, with the broker's IAM policy engine. Prove the caller by "
                "signing the request with SigV4 (service 'sts', the broker's region) or by "
                "forwarding the client's presigned GetCallerIdentity URL as 'proof'."
            ),
        },
        "paths": {
            "/authz/check": {
                "post": {
                    "operationId": "check",
                    "summary": "Is the caller allowed to perform action on resource?",
                    "security": [{"sigv4": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Check"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "The decision (a deny is a 200 with allowed false)",
                            "content": {
                                _JSON: {"schema": {"$ref": "#/components/schemas/Decision"}}
                            },
                        },
                        **errors,
                    },
                }
            },
            "/authz/decode": {
                "post": {
                    "operationId": "decode",
                    "summary": "Decode an encoded authorization message "
                    "(needs sts:DecodeAuthorizationMessage; SigV4 only)",
                    "security": [{"sigv4": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["encoded_message"],
                                    "properties": {
                                        "encoded_message": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": MAX_MESSAGE_CHARS,
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "AWS's DecodeAuthorizationMessage document",
                            "content": {
                                _JSON: {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"decoded_message": {"type": "object"}},
                                    }
                                }
                            },
                        },
                        **errors,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4, service 'sts', broker's region",
                }
            },
            "schemas": {
                "Check": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["action", "resource"],
                    "properties": {
                        "action": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9-]{1,64}:[A-Za-z0-9_-]{1,128}$",
                            "examples": ["s3:PutObject"],
                        },
                        "resource": {"type": "string", "minLength": 1, "maxLength": 2048},
                        "context": {
                            "type": "object",
                            "maxProperties": 64,
                            "additionalProperties": context_value,
                        },
                        "proof": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["presigned_url"],
                            "properties": {
                                "presigned_url": {"type": "string", "maxLength": MAX_PROOF_CHARS}
                            },
                        },
                    },
                },
                "Decision": {
                    "type": "object",
                    "required": ["allowed", "principal", "matched", "reason"],
                    "properties": {
                        "allowed": {"type": "boolean"},
                        "principal": {
                            "type": "object",
                            "properties": {
                                "arn": {"type": "string"},
                                "account": {"type": "string"},
                                "user_id": {"type": "string"},
                            },
                        },
                        "matched": {
                            "type": "array",
                            "description": "Statements that allowed (empty on a deny)",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "policy": {"type": "string"},
                                    "statement_index": {"type": "integer"},
                                    "sid": {"type": ["string", "null"]},
                                    "effect": {"enum": ["Allow", "Deny"]},
                                },
                            },
                        },
                        "reason": {"type": "string"},
                        "encoded_message": {
                            "type": "string",
                            "description": "On a deny: decode with sts:DecodeAuthorizationMessage",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                        "request_id": {"type": "string"},
                    },
                },
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
