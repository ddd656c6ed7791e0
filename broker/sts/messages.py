"""Encoded authorization messages: why a request was denied, sealed for privileged eyes only.

AWS answers a refused request with an opaque ``EncodedMessage`` because the details (which
statement matched, every condition key's value) can be privileged: the caller who was
refused should not read them, but someone granted ``sts:DecodeAuthorizationMessage`` may.
This module produces and opens such messages in AWS's exact decoded JSON shape.

Format (then base64url without padding)::

    version (1) | key tag (4) | nonce (12) | AES-256-GCM( zlib(compact JSON) ) + tag (16)

- Sealed with the broker's token keys, but under a separate HKDF sub-key with its own
  purpose string and a version byte no session token uses: a message can never be opened
  as a token, nor a token as a message.
- The header and a fixed label are authenticated as associated data, so flipping any byte
  is refused; the key tag (first 4 bytes of SHA-256 of the key ID) names the key that
  sealed it, so rotation works as for tokens.
- The payload carries the account and the time it was made: a message decodes only for a
  caller in the same account, and only for ``ttl_seconds`` (AWS: "the message has expired").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.clock import Clock, SystemClock
from broker.directory import Directory
from broker.errors import StsError, access_denied
from broker.iam import AuthzRequest, ContextValue, Decision, Policy, Statement, authorize
from broker.identity import Caller

__all__ = [
    "DECODE_ACTION",
    "MAX_MESSAGE_CHARS",
    "AuthorizationMessages",
    "invalid_message",
]

DECODE_ACTION = "sts:DecodeAuthorizationMessage"
MAX_MESSAGE_CHARS = 10240
"""botocore's ``encodedMessageType`` maximum: a longer message could not be decoded."""
DEFAULT_TTL_SECONDS = 86400

_VERSION = 0xA1
"""Never a session token's version byte (those are 0x01 / 0x81)."""
_PURPOSE = b"sts-broker authorization message v1"
_LABEL = b"sts-broker:authorization-message"
_HEADER = 1 + 4 + 12
_MIN_RAW = _HEADER + 16
_MAX_PAYLOAD_BYTES = 1 << 20
"""Bound on the inflated payload: even a message we sealed never inflates past this."""
_MAX_ITEMS = 64
"""Items kept per list (statements, actions, resources, conditions, values)."""


def invalid_message(detail: str) -> StsError:
    """AWS's modelled refusal for a message it cannot open (botocore: 400, sender fault)."""
    return StsError("InvalidAuthorizationMessageException", detail, 400)


@dataclass(frozen=True)
class _Key:
    tag: bytes
    aead: AESGCM


class AuthorizationMessages:
    """Seals decisions into encoded messages and opens them again, with the token keys.

    ``keys`` are the same ``(key_id, secret)`` pairs
    :class:`~broker.identity.session_tokens.TokenSealer` takes: the first seals, every one
    opens.
    """

    def __init__(
        self,
        keys: Sequence[tuple[str, bytes]],
        *,
        clock: Clock | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._clock = clock or SystemClock()
        self._ttl = ttl_seconds
        self._keys: dict[bytes, _Key] = {}
        for key_id, secret in keys:
            tag = hashlib.sha256(key_id.encode()).digest()[:4]
            derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE)
            self._keys[tag] = _Key(tag=tag, aead=AESGCM(derived.derive(secret)))
        self._sealing = self._keys[hashlib.sha256(keys[0][0].encode()).digest()[:4]]

    # -- encode ------------------------------------------------------------------------

    def encode(
        self,
        decision: Decision,
        request: AuthzRequest,
        caller: Caller,
        policies: Sequence[Policy] | None = None,
    ) -> str:
        """Seal ``decision`` on ``request`` by ``caller`` into an opaque message.

        ``policies`` are the policies that were evaluated (identity, then session), so each
        matched statement can show its actions and resources; by default the caller's
        identity policies. Detail is shed (condition values, then statement contents) if
        the message would otherwise exceed what ``DecodeAuthorizationMessage`` accepts.
        """
        evaluated = caller.identity_policies() if policies is None else policies
        document = _document(decision, request, caller, evaluated)
        for trim in (_keep_all, _drop_conditions, _drop_statements):
            message = self._seal(
                {"acct": caller.account, "iat": int(self._clock.time()), "doc": trim(document)}
            )
            if len(message) <= MAX_MESSAGE_CHARS:
                return message
        raise ValueError("authorization message does not fit even without detail")

    def _seal(self, payload: Mapping[str, Any]) -> str:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        nonce = secrets.token_bytes(12)
        header = bytes([_VERSION]) + self._sealing.tag + nonce
        sealed = self._sealing.aead.encrypt(nonce, zlib.compress(text, 9), _LABEL + header)
        return base64.urlsafe_b64encode(header + sealed).rstrip(b"=").decode()

    # -- decode ------------------------------------------------------------------------

    def decode(self, message: str) -> dict[str, Any]:
        """Open a message; return AWS's decoded document, or raise
        ``InvalidAuthorizationMessageException`` (400) for anything this broker did not seal,
        or sealed longer ago than the TTL. The reason never echoes the input."""
        return self._open(message)[1]

    def decode_for(
        self,
        caller: Caller,
        message: str,
        directory: Directory,
        *,
        context: Mapping[str, ContextValue] | None = None,
    ) -> dict[str, Any]:
        """``DecodeAuthorizationMessage`` for ``caller``: permission first, then the message.

        The caller's identity policies (∩ its session policies) must allow
        ``sts:DecodeAuthorizationMessage``, else ``AccessDenied`` (403) before the message
        is even looked at, so an unauthorized caller cannot probe messages. ``context`` is
        the request's global condition keys (:meth:`Caller.context`). A message about a
        principal in another account is refused as invalid, as AWS's per-account messages are.
        """
        request = AuthzRequest(action=DECODE_ACTION, resource="*", context=context or {})
        decision = authorize(
            request,
            identity=caller.identity_policies(),
            session=caller.session_policies(directory),
        )
        if not decision.allowed:
            raise access_denied(
                f"User: {caller.arn} is not authorized to perform: {DECODE_ACTION} "
                f"because {decision.reason}"
            )
        account, document = self._open(message)
        if account != caller.account:
            raise invalid_message("The message was not issued for this account.")
        return document

    def _open(self, message: str) -> tuple[str, dict[str, Any]]:
        if not message or len(message) > MAX_MESSAGE_CHARS or not message.isascii():
            raise invalid_message(
                f"The message must be 1 to {MAX_MESSAGE_CHARS} characters of base64url."
            )
        try:
            raw = base64.urlsafe_b64decode(message + "=" * (-len(message) % 4))
        except (binascii.Error, ValueError):
            raise invalid_message("The message is not valid base64url.") from None
        if len(raw) < _MIN_RAW or raw[0] != _VERSION:
            raise invalid_message("The message is not an authorization message.")
        key = self._keys.get(raw[1:5])
        if key is None:
            raise invalid_message("The message was not issued by this broker.")
        header, nonce = raw[:_HEADER], raw[5:_HEADER]
        try:
            packed = key.aead.decrypt(nonce, raw[_HEADER:], _LABEL + header)
        except InvalidTag:
            raise invalid_message("The message has been altered.") from None
        payload = _inflate(packed)
        issued = payload.get("iat")
        account = payload.get("acct")
        document = payload.get("doc")
        if not (
            isinstance(issued, int) and isinstance(account, str) and isinstance(document, dict)
        ):
            raise invalid_message("The message is not an authorization message.")
        if self._clock.time() > issued + self._ttl:
            raise invalid_message("The message has expired.")
        return account, document


def _inflate(packed: bytes) -> dict[str, Any]:
    """Sealed by us, so well-formed; still bounded, since a key holder is not the only
    reason bytes could be surprising (a future format, a bug)."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(packed, _MAX_PAYLOAD_BYTES)
        payload = json.loads(text)
    except (zlib.error, ValueError):
        raise invalid_message("The message is not an authorization message.") from None
    if inflater.unconsumed_tail or not isinstance(payload, dict):
        raise invalid_message("The message is not an authorization message.")
    return payload


# -- AWS's decoded document -----------------------------------------------------------------


def _items(values: Sequence[Any]) -> dict[str, list[Any]]:
    return {"items": list(values[:_MAX_ITEMS])}


def _values(values: Sequence[str]) -> dict[str, list[Any]]:
    return _items([{"value": v} for v in values])


def _statement_entry(
    effect: str, sid: str | None, principal_id: str, statement: Statement | None
) -> dict[str, Any]:
    actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    conditions: list[dict[str, Any]] = []
    if statement is not None:
        actions = statement.actions
        resources = tuple(r.raw for r in statement.resources or ())
        conditions = [
            {"key": c.key, "values": _values([v.raw for v in c.values])}
            for c in statement.conditions
        ]
    return {
        "statementId": sid or "",
        "effect": effect.upper(),
        "principals": _values([principal_id]),
        "principalGroups": _items([]),
        "actions": _values(actions),
        "resources": _values(resources),
        "conditions": _items(conditions),
    }


def _document(
    decision: Decision, request: AuthzRequest, caller: Caller, policies: Sequence[Policy]
) -> dict[str, Any]:
    """AWS's decoded shape (see the DecodeAuthorizationMessage example in the STS docs)."""
    statements: dict[tuple[str, int], Statement] = {}
    for policy in policies:
        for index, statement in enumerate(policy.statements):
            statements.setdefault((policy.name, index), statement)
    # AWS lists the principal's unique ID without a session part (AROA..., AIDA...).
    principal_id = caller.user_id.split(":", 1)[0]
    matched = [
        _statement_entry(m.effect, m.sid, principal_id, statements.get((m.policy, m.index)))
        for m in decision.matched
    ]
    conditions = []
    for key in sorted(request.context):
        value = request.context[key]
        values = (value,) if isinstance(value, str) else value
        conditions.append({"key": key, "values": _values(values)})
    return {
        "allowed": decision.allowed,
        "explicitDeny": decision.explicit_deny,
        "matchedStatements": _items(matched),
        "failures": _items([]),
        "context": {
            "principal": {"id": caller.user_id, "arn": caller.arn},
            "action": request.action,
            "resource": request.resource,
            "conditions": _items(conditions),
        },
    }


def _keep_all(document: dict[str, Any]) -> dict[str, Any]:
    return document


def _drop_conditions(document: dict[str, Any]) -> dict[str, Any]:
    context = dict(document["context"], conditions=_items([]))
    statements = [dict(s, conditions=_items([])) for s in document["matchedStatements"]["items"]]
    return dict(document, context=context, matchedStatements=_items(statements))


def _drop_statements(document: dict[str, Any]) -> dict[str, Any]:
    trimmed = _drop_conditions(document)
    statements = [
        dict(s, actions=_items([]), resources=_items([]))
        for s in trimmed["matchedStatements"]["items"]
    ]
    return dict(trimmed, matchedStatements=_items(statements))
