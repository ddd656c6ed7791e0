"""The authorization check: may this caller do this action to this resource, right now?

Resource servers ask the broker instead of re-implementing IAM: the answer comes from the
same policy engine the STS actions use, over the caller's live identity policies
intersected with its session policies, with AWS's global condition keys set from the
verified credentials. A deny carries an encoded authorization message, as AWS's own
refusals do, so the reason can be decoded by someone allowed to see it.

The request's own context may add keys (``s3:prefix``, ``aws:ResourceTag/team``, ...), but
never a key the broker derives from the credentials (``aws:PrincipalArn``,
``aws:PrincipalTag/*``, ``aws:MultiFactorAuthPresent``, ...): letting the asker set those
would let anyone claim MFA or a tag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.clock import Clock
from broker.directory import Directory
from broker.errors import access_denied, validation_error
from broker.iam import AuthzRequest, ContextValue, Decision, MatchedStatement, authorize
from broker.identity import Caller
from broker.sts.messages import DECODE_ACTION, AuthorizationMessages

__all__ = [
    "MAX_CONTEXT_KEYS",
    "MAX_RESOURCE_CHARS",
    "AuthzService",
    "CheckResult",
    "is_reserved_key",
]

MAX_CONTEXT_KEYS = 64
MAX_KEY_CHARS = 256
MAX_VALUES_PER_KEY = 64
MAX_VALUE_CHARS = 1024
MAX_RESOURCE_CHARS = 2048

_ACTION_RE = re.compile(r"[A-Za-z0-9-]{1,64}:[A-Za-z0-9_-]{1,128}", re.ASCII)
"""A concrete action: no wildcards (a request names one action; policies hold patterns)."""
_KEY_RE = re.compile(r"[A-Za-z0-9_.:/+=@-]+", re.ASCII)
_PRINTABLE_RE = re.compile(r"[^\x00-\x1f\x7f]*")

_RESERVED_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:SecureTransport",
        "aws:SourceIp",
        "aws:userid",
        "aws:username",
        "aws:MultiFactorAuthPresent",
        "aws:MultiFactorAuthAge",
        "aws:TokenIssueTime",
        "aws:SourceIdentity",
        "aws:FederatedProvider",
        "aws:ViaAWSService",
        "aws:CalledVia",
        "aws:CalledViaFirst",
        "aws:CalledViaLast",
    )
)
_RESERVED_PREFIXES = ("aws:principal",)
"""Every ``aws:Principal*`` key (Arn, Account, Type, Tag/..., OrgID, ...) describes the
caller, so only the verified credentials may set it."""


def is_reserved_key(key: str) -> bool:
    """Whether ``key`` is a global condition key only the broker may set (case-insensitive).

    ``aws:SourceIp`` and ``aws:SecureTransport`` are reserved here too: the check takes them
    as explicit arguments so the HTTP layer decides whom to believe about the connection.
    """
    folded = key.lower()
    return folded in _RESERVED_KEYS or folded.startswith(_RESERVED_PREFIXES)


@dataclass(frozen=True)
class CheckResult:
    """The answer to one check. ``encoded_message`` is set on a deny only."""

    allowed: bool
    matched: tuple[MatchedStatement, ...]
    reason: str
    encoded_message: str | None


class AuthzService:
    """Answers checks for authenticated callers; pure apart from reading the clock."""

    def __init__(
        self,
        *,
        directory: Directory,
        messages: AuthorizationMessages,
        clock: Clock,
        region: str,
    ) -> None:
        self._directory = directory
        self._messages = messages
        self._clock = clock
        self._region = region

    @property
    def messages(self) -> AuthorizationMessages:
        return self._messages

    def global_context(
        self, caller: Caller, *, source_ip: str = "", secure: bool = False
    ) -> dict[str, ContextValue]:
        """AWS's global condition keys for ``caller`` now (``aws:SourceIp`` only if known)."""
        return caller.context(
            now=self._clock.time(), source_ip=source_ip, secure=secure, region=self._region
        )

    def check(
        self,
        caller: Caller,
        action: str,
        resource: str,
        context: Mapping[str, ContextValue],
        *,
        source_ip: str = "",
        secure: bool = False,
    ) -> CheckResult:
        """Evaluate ``action`` on ``resource`` for ``caller``.

        ``context`` holds the request's own condition keys; it is validated (sizes, no
        reserved key: see :func:`is_reserved_key`) and raises ``ValidationError`` (400)
        otherwise. ``source_ip`` / ``secure`` describe the client's connection as the
        party asking knows it; an empty ``source_ip`` leaves ``aws:SourceIp`` unset, so a
        condition on it fails closed.
        """
        _check_action(action)
        _check_resource(resource)
        supplied = _checked_context(context)
        overridden = {key.lower() for key in supplied}
        full = {
            key: value
            for key, value in self.global_context(
                caller, source_ip=source_ip, secure=secure
            ).items()
            if key.lower() not in overridden
        }
        full.update(supplied)
        request = AuthzRequest(action=action, resource=resource, context=full)
        session = caller.session_policies(self._directory)
        restriction = _credential_restriction(caller, action)
        if restriction is not None:
            decision = Decision(allowed=False, explicit_deny=False, matched=(), reason=restriction)
        else:
            decision = authorize(request, identity=caller.identity_policies(), session=session)
        if decision.allowed:
            return CheckResult(True, decision.matched, decision.reason, None)
        evaluated = (*caller.identity_policies(), *(session or ()))
        message = self._messages.encode(decision, request, caller, evaluated)
        return CheckResult(False, decision.matched, decision.reason, message)

    def decode(
        self, caller: Caller, message: str, *, source_ip: str = "", secure: bool = False
    ) -> dict[str, Any]:
        """``DecodeAuthorizationMessage`` for ``caller``, with the same credential-kind
        limits the STS endpoint applies (GetSessionToken / GetFederationToken credentials
        may not call it) and the caller's global condition keys."""
        restriction = _credential_restriction(caller, DECODE_ACTION)
        if restriction is not None:
            raise access_denied(
                f"User: {caller.arn} is not authorized to perform: {DECODE_ACTION} "
                f"because {restriction}"
            )
        context = self.global_context(caller, source_ip=source_ip, secure=secure)
        return self._messages.decode_for(caller, message, self._directory, context=context)


def _credential_restriction(caller: Caller, action: str) -> str | None:
    """AWS's limits on what temporary credentials of some kinds may call at all.

    GetSessionToken credentials cannot call IAM without MFA, nor STS beyond AssumeRole and
    GetCallerIdentity; GetFederationToken credentials cannot call IAM, nor STS beyond
    GetCallerIdentity. Policies cannot lift these, so they are checked first.
    """
    service, _, name = action.partition(":")
    service = service.lower()
    if caller.kind == "session":
        if service == "iam" and not caller.mfa:
            return "credentials from GetSessionToken cannot call IAM without MFA"
        if service == "sts" and name.lower() not in ("assumerole", "getcalleridentity"):
            return f"credentials from GetSessionToken cannot call {action}"
    if caller.kind == "federated-user" and (
        service == "iam" or (service == "sts" and name.lower() != "getcalleridentity")
    ):
        return f"credentials from GetFederationToken cannot call {action}"
    return None


def _check_action(action: str) -> None:
    if not _ACTION_RE.fullmatch(action):
        raise validation_error(
            "action must be one concrete IAM action, service:Name (letters, digits, - and _; "
            "no wildcards)"
        )


def _check_resource(resource: str) -> None:
    if not resource or len(resource) > MAX_RESOURCE_CHARS or not _PRINTABLE_RE.fullmatch(resource):
        raise validation_error(
            f"resource must be 1 to {MAX_RESOURCE_CHARS} characters without control characters"
        )


def _checked_context(context: Mapping[str, ContextValue]) -> dict[str, ContextValue]:
    if len(context) > MAX_CONTEXT_KEYS:
        raise validation_error(f"context may hold at most {MAX_CONTEXT_KEYS} keys")
    seen: set[str] = set()
    out: dict[str, ContextValue] = {}
    for key, value in context.items():
        if not (len(key) <= MAX_KEY_CHARS and ":" in key and _KEY_RE.fullmatch(key)):
            raise validation_error(
                f"context keys must be prefix:name, at most {MAX_KEY_CHARS} characters of "
                "letters, digits and _ . : / + = @ -"
            )
        if is_reserved_key(key):
            raise validation_error(
                f"context key {key} is set by the broker from the caller's credentials and "
                "cannot be supplied"
            )
        if key.lower() in seen:
            raise validation_error(f"context key {key} is given twice (keys are case-insensitive)")
        seen.add(key.lower())
        values = (value,) if isinstance(value, str) else value
        if len(values) > MAX_VALUES_PER_KEY or any(
            len(v) > MAX_VALUE_CHARS or not _PRINTABLE_RE.fullmatch(v) for v in values
        ):
            raise validation_error(
                f"context key {key}: at most {MAX_VALUES_PER_KEY} values of at most "
                f"{MAX_VALUE_CHARS} characters without control characters"
            )
        out[key] = value if isinstance(value, str) else tuple(value)
    return out
