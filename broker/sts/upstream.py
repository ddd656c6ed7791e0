"""Real AWS STS as the source of credentials for an upstream account (custom identity broker).

For an upstream account the broker makes its own trust-policy decision first and then, instead
of minting, asks real STS: either ``AssumeRole`` signed with the broker's own AWS
credentials, or ``AssumeRoleWithWebIdentity`` with an ID token the broker signed as an OIDC
issuer (an unsigned call: the broker then holds no AWS secret at all).

Why botocore and not a hand-written Query client: it is what users already trust to talk to
STS. It signs (SigV4), finds the broker's credentials (environment, shared files and named
profiles, SSO, container and instance roles, refreshing them), resolves endpoints and, in
its ``standard`` retry mode, retries Throttling and transient failures with jittered
exponential backoff under a retry quota, so a struggling upstream is not hammered.

botocore is synchronous and its clients are thread-safe, so each :class:`UpstreamSts` builds
its two clients once and runs every call on a thread pool of its own, bounded, so a slow
upstream ties up neither the event loop nor the loop's default executor other code shares.
Connect and read timeouts bound each attempt, ``max_attempts`` the number of attempts.

Every failure is an :class:`~broker.errors.StsError`, the broker's one error type (table in
:meth:`UpstreamSts._translate`), and no message or log line carries a secret: not the
broker's own AWS credentials, not the web identity token, not returned credentials (see
:mod:`broker.sts.log_guard` for the libraries' own log lines).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import CredentialResolver
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    InvalidConfigError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError as BotoHTTPClientError
from botocore.parsers import ResponseParserError

from broker.errors import StsError
from broker.sts.log_guard import guarding, protect_loggers

log = logging.getLogger("broker.sts.upstream")

DEFAULT_MAX_CONCURRENCY = 10
"""Upstream calls in flight at once per client; more wait their turn (bounded by timeouts)."""

MAX_MESSAGE_CHARS = 1024
"""An upstream message is passed on, but never an unbounded one."""

_NO_TAGS: Mapping[str, str] = MappingProxyType({})

_BROKER_AUTH_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
    }
)
"""Codes by which upstream refuses the *broker's own* signature or credentials.

Passed through, they would tell the broker's caller that *their* credentials are bad; they
are the broker's configuration problem, so they are answered ServiceUnavailable instead."""

_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    ProfileNotFound,
    TokenRetrievalError,
    SSOError,
    InvalidConfigError,
)


class UpstreamSetupError(Exception):
    """The upstream client cannot be built as configured (unknown profile, bad endpoint).

    Raised only by :class:`UpstreamSts`'s constructor, i.e. while the broker starts: the
    config layer reports it next to the setting that caused it.
    """


@dataclass(frozen=True)
class UpstreamCredentials:
    """Real AWS credentials from upstream STS, as its answer gave them.

    ``expiration`` is epoch seconds, AWS's own ``Expiration`` (not recomputed locally, so the
    broker never hands out a lifetime upstream did not grant). The secret and the session
    token are left out of ``repr`` so a log line or a traceback with locals cannot show them.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: float
    assumed_role_arn: str
    assumed_role_id: str
    packed_policy_size: int | None = None
    source_identity: str | None = None


class UpstreamSts:
    """An async client for one upstream STS endpoint: AssumeRole and AssumeRoleWithWebIdentity.

    ``profile`` names a shared-config profile for the broker's own credentials (AssumeRole
    only); without it botocore's default chain is used. botocore resolves those credentials
    when the client is built, here (on EC2/ECS that may ask the metadata service); if none
    are found, construction still succeeds, web identity works and AssumeRole answers
    ServiceUnavailable naming what to configure. An unknown profile is an
    :class:`UpstreamSetupError` right away.
    """

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        *,
        profile: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self._endpoint = endpoint_url
        self._profile = profile
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            max_pool_connections=max_concurrency,
            user_agent_extra="sts-broker",
        )
        protect_loggers()
        try:
            self._signed = botocore.session.Session(profile=profile).create_client(
                "sts", region_name=region, endpoint_url=endpoint_url, config=config
            )
            # Its own session, with a resolver that finds nothing: an unsigned client never
            # needs credentials, so it must not search the chain (or wait for IMDS) for them.
            bare = botocore.session.Session(profile=profile)
            bare.register_component("credential_provider", CredentialResolver(providers=[]))
            self._unsigned = bare.create_client(
                "sts",
                region_name=region,
                endpoint_url=endpoint_url,
                config=config.merge(Config(signature_version=UNSIGNED)),
            )
        except ProfileNotFound:
            raise UpstreamSetupError(
                f"AWS profile {profile!r} is not in the shared config or credentials file "
                "(~/.aws/config, ~/.aws/credentials, or AWS_CONFIG_FILE / "
                "AWS_SHARED_CREDENTIALS_FILE)"
            ) from None
        except (BotoCoreError, ValueError) as exc:
            # Operator-facing and at startup: botocore's own words say which setting is wrong.
            raise UpstreamSetupError(
                f"cannot build the upstream STS client for {endpoint_url} ({region}): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="upstream-sts"
        )
        self._closed = False

    @property
    def endpoint_url(self) -> str:
        return self._endpoint

    async def __aenter__(self) -> UpstreamSts:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Let calls already made finish (bounded by the timeouts), then close the connections.

        Waiting happens on a thread, not the event loop; calls after close are refused.
        Queued calls are not cancelled: their callers would see a bare CancelledError.
        """
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._signed.close()
        self._unsigned.close()

    async def assume_role(
        self,
        *,
        role_arn: str,
        role_session_name: str,
        duration_seconds: int,
        source_identity: str | None = None,
        tags: Mapping[str, str] = _NO_TAGS,
        transitive_tag_keys: Sequence[str] = (),
        policy: str | None = None,
        policy_arns: Sequence[str] = (),
        external_id: str | None = None,
    ) -> UpstreamCredentials:
        """AssumeRole with the broker's own credentials. Unset options are left out entirely
        (AWS refuses an empty ``Tags`` or ``PolicyArns`` list for some roles)."""
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": role_session_name,
            "DurationSeconds": duration_seconds,
        }
        if source_identity is not None:
            params["SourceIdentity"] = source_identity
        if tags:
            params["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
        if transitive_tag_keys:
            params["TransitiveTagKeys"] = list(transitive_tag_keys)
        _session_policies(params, policy, policy_arns)
        if external_id is not None:
            params["ExternalId"] = external_id
        answer = await self._call(self._signed.assume_role, "AssumeRole", params, secrets=())
        return self._credentials(answer, "AssumeRole", role_arn)

    async def assume_role_with_web_identity(
        self,
        *,
        role_arn: str,
        role_session_name: str,
        web_identity_token: str,
        duration_seconds: int,
        policy: str | None = None,
        policy_arns: Sequence[str] = (),
    ) -> UpstreamCredentials:
        """AssumeRoleWithWebIdentity, unsigned: the token is the proof, no AWS key is used."""
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": role_session_name,
            "WebIdentityToken": web_identity_token,
            "DurationSeconds": duration_seconds,
        }
        _session_policies(params, policy, policy_arns)
        answer = await self._call(
            self._unsigned.assume_role_with_web_identity,
            "AssumeRoleWithWebIdentity",
            params,
            secrets=(web_identity_token,),
        )
        return self._credentials(answer, "AssumeRoleWithWebIdentity", role_arn)

    # -- one call ----------------------------------------------------------------------

    async def _call(
        self,
        method: Callable[..., Any],
        operation: str,
        params: dict[str, Any],
        *,
        secrets: tuple[str, ...],
    ) -> Mapping[str, Any]:
        """Run one botocore call on the pool, inside the log guard; failures as StsError."""
        if self._closed:
            raise _unavailable(f"the upstream STS client for {self._endpoint} is closed")

        def run() -> Any:
            with guarding(secrets):
                return method(**params)

        loop = asyncio.get_running_loop()
        # copy_context: the worker thread runs in this task's context (the guard's variable).
        future = loop.run_in_executor(self._executor, contextvars.copy_context().run, run)
        try:
            answer = await future
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            failure = self._translate(exc, operation, secrets)
        else:
            if not isinstance(answer, Mapping):
                raise self._malformed(operation, "not a result structure")
            return answer
        # Raised outside the handler, so no __context__ keeps botocore's exception alive: it
        # holds the prepared request, headers (security token) and body (web identity token).
        log.log(
            logging.WARNING if failure.status >= 500 else logging.INFO,
            "upstream %s at %s failed: %s %d",
            operation,
            self._endpoint,
            failure.code,
            failure.status,
        )
        raise failure

    def _translate(self, exc: Exception, operation: str, secrets: tuple[str, ...]) -> StsError:
        """A botocore failure as the StsError the broker answers.

        ======================================  ==============================================
        botocore                                StsError
        ======================================  ==============================================
        ClientError (upstream answered)         its code, "upstream STS: " + its message, its
                                                HTTP status (else 400 Sender / 500 Receiver);
                                                Throttling stays 400 after botocore's retries
        ClientError refusing the broker's own   ServiceUnavailable 503: configuration
        credentials (_BROKER_AUTH_CODES)
        ClientError without an AWS code         ServiceUnavailable 503 (e.g. a proxy's 502)
        ParamValidationError (never sent)       ValidationError 400
        Endpoint/ConnectTimeout/ReadTimeout/    ServiceUnavailable 503 "did not answer"
        ConnectionClosed/SSL/Proxy errors
        no usable broker credentials            ServiceUnavailable 503 naming what to set
        ResponseParserError, other BotoCore     ServiceUnavailable 503
        ======================================  ==============================================
        """
        if isinstance(exc, ClientError):
            return self._refusal(exc, operation, secrets)
        if isinstance(exc, ParamValidationError):
            report = _scrub(str(exc.kwargs.get("report", exc)), secrets)
            return StsError("ValidationError", f"not sent to upstream STS: {report}", 400)
        if isinstance(exc, _CREDENTIAL_ERRORS):
            return _unavailable(
                f"the broker has no usable AWS credentials to call {operation} on upstream STS "
                f"at {self._endpoint} ({type(exc).__name__}); {self._credentials_hint()}"
            )
        reason = self._transport_reason(exc)
        if reason is not None:
            return _unavailable(f"upstream STS at {self._endpoint} did not answer: {reason}")
        if isinstance(exc, ResponseParserError):
            return self._malformed(operation, "it could not be parsed")
        return _unavailable(
            f"upstream STS at {self._endpoint} failed for {operation}: {type(exc).__name__}"
        )

    def _refusal(self, exc: Any, operation: str, secrets: tuple[str, ...]) -> StsError:
        response: Mapping[str, Any] = exc.response if isinstance(exc.response, Mapping) else {}
        found = response.get("Error")
        error: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        meta = response.get("ResponseMetadata")
        code = str(error.get("Code") or "")
        message = _scrub(str(error.get("Message") or ""), secrets)[:MAX_MESSAGE_CHARS]
        status = meta.get("HTTPStatusCode") if isinstance(meta, Mapping) else None
        if not code or code.isdigit():
            # botocore names a non-AWS error body by its status (a proxy's HTML 502).
            shown = f" ({message})" if message else ""
            return _unavailable(
                f"upstream STS at {self._endpoint} answered HTTP {status or code}{shown} "
                "without an AWS error"
            )
        if operation == "AssumeRole" and code in _BROKER_AUTH_CODES:
            return _unavailable(
                f"upstream STS refused the broker's own AWS credentials ({code}: {message}); "
                f"{self._credentials_hint()}"
            )
        kind = error.get("Type")
        if not isinstance(status, int) or not 400 <= status <= 599:
            status = 500 if kind == "Receiver" else 400
        sender = kind == "Sender" if kind in ("Sender", "Receiver") else status < 500
        return StsError(code, f"upstream STS: {message or code}", status, sender=sender)

    def _transport_reason(self, exc: Exception) -> str | None:
        """Why no answer came, in a few words; None if ``exc`` is not a transport failure."""
        if isinstance(exc, ConnectTimeoutError):
            return f"no connection within {self._connect_timeout:g} s"
        if isinstance(exc, ReadTimeoutError):
            return f"no answer within {self._read_timeout:g} s"
        if isinstance(exc, ConnectionClosedError):
            return "the connection closed before a complete answer"
        if isinstance(exc, SSLError):
            return "TLS failed (certificate or handshake)"
        if isinstance(exc, ProxyConnectionError):
            return "the HTTP proxy could not be reached"
        if isinstance(exc, EndpointConnectionError):
            return "connection refused or host unreachable"
        if isinstance(exc, (BotoConnectionError, BotoHTTPClientError)):
            return type(exc).__name__
        return None

    def _credentials_hint(self) -> str:
        if self._profile is not None:
            return (
                f"check AWS profile {self._profile!r} in the shared config and credentials "
                "files (keys, role_arn/source_profile, sso_* or credential_process)"
            )
        return (
            "configure botocore's default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or a profile setting, a web identity token file, or an "
            "instance/container role"
        )

    def _malformed(self, operation: str, why: str) -> StsError:
        return _unavailable(
            f"upstream STS at {self._endpoint} sent an unusable {operation} answer: {why}"
        )

    def _credentials(
        self, answer: Mapping[str, Any], operation: str, role_arn: str
    ) -> UpstreamCredentials:
        """The answer's credentials, every required field checked (botocore leaves missing
        XML elements out of the dict rather than failing)."""
        try:
            creds = answer["Credentials"]
            user = answer["AssumedRoleUser"]
            result = UpstreamCredentials(
                access_key_id=_text(creds["AccessKeyId"]),
                secret_access_key=_text(creds["SecretAccessKey"]),
                session_token=_text(creds["SessionToken"]),
                expiration=_epoch(creds["Expiration"]),
                assumed_role_arn=_text(user["Arn"]),
                assumed_role_id=_text(user["AssumedRoleId"]),
                packed_policy_size=_optional_int(answer.get("PackedPolicySize")),
                source_identity=_optional_text(answer.get("SourceIdentity")),
            )
        except KeyError as missing:
            raise self._malformed(operation, f"{missing.args[0]} is missing") from None
        except (TypeError, ValueError):
            raise self._malformed(operation, "a field has the wrong type") from None
        log.info(
            "upstream %s %s -> %s (%s)",
            operation,
            role_arn,
            result.assumed_role_arn,
            result.access_key_id,
        )
        return result


def _session_policies(params: dict[str, Any], policy: str | None, arns: Sequence[str]) -> None:
    if policy is not None:
        params["Policy"] = policy
    if arns:
        params["PolicyArns"] = [{"arn": arn} for arn in arns]


def _unavailable(message: str) -> StsError:
    return StsError("ServiceUnavailable", message, 503, sender=False)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every known secret cut out (botocore's type errors quote the value)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("not a non-empty string")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _epoch(value: object) -> float:
    """botocore parses ``Expiration`` to an aware datetime; a naive one is UTC (as sent)."""
    if not isinstance(value, datetime):
        raise TypeError("not a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
