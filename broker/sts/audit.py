"""What an STS call's audit event says: CloudTrail's fields, filled from the call.

:func:`record_call` turns one Query API call (its parameters, the caller or the verified
federation proof, the answer or the refusal) into the event CloudTrail would write for it:
``userIdentity`` of type ``IAMUser``, ``AssumedRole``, ``FederatedUser``, ``SAMLUser`` or
``WebIdentityUser``; ``requestParameters`` and ``responseElements`` in CloudTrail's
camelCase; for federation, ``additionalEventData`` with the SAML issuer and assertion ID or
the token's ``iss``/``sub``/``aud``/``jti``. The browser's events (:mod:`broker.web.audit`)
reuse the identity and answer builders here, so a role picked on a page reads like the
same ``AssumeRoleWith*`` call made through the API.

**Allow-lists only.** Parameters and answer members are copied by name from the tables
below, never wholesale: ``WebIdentityToken``, ``SAMLAssertion``, ``TokenCode``,
``SecretAccessKey``, ``SessionToken`` and the issued ``WebIdentityToken`` are not in them,
so they can never reach a sink (``tests/security`` scans every event of its run to prove
it). Values are capped in length, so an event stays one reasonable line.

**Who was verified.** A federated call can be refused after its proof was verified (the
trust policy says no): the engine then has the identity and the API does not. The engine
puts it in the call's :class:`AuditFacts` (passed in ``RequestInfo.audit``), so a refused
call still names who tried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import HTTPConnection

from broker.clock import iso8601
from broker.errors import shortened
from broker.identity import Caller, SamlIdentity, WebIdentity
from broker.observability import AuditTrail, RequestFacts

_MAX_VALUE = 2048
_MAX_POLICY = 10240
_MAX_ITEMS = 50

_PARAMETERS: Mapping[str, str] = {
    "RoleArn": "roleArn",
    "RoleSessionName": "roleSessionName",
    "DurationSeconds": "durationSeconds",
    "ExternalId": "externalId",
    "SerialNumber": "serialNumber",
    "SourceIdentity": "sourceIdentity",
    "TransitiveTagKeys": "transitiveTagKeys",
    "PrincipalArn": "principalArn",
    "ProviderId": "providerId",
    "Name": "name",
    "AccessKeyId": "accessKeyId",
    "Audience": "audience",
    "SigningAlgorithm": "signingAlgorithm",
    "SubjectMode": "subjectMode",
}
"""Scalar (and string list) parameters an event records, model name -> CloudTrail name.
Not ``WebIdentityToken``, ``SAMLAssertion``, ``TokenCode``, ``EncodedMessage``."""

_LISTS = frozenset({"TransitiveTagKeys"})
"""The string-list parameters among them (a list, whether parsed or on the wire)."""

_ANSWERS: Mapping[str, str] = {
    "PackedPolicySize": "packedPolicySize",
    "SourceIdentity": "sourceIdentity",
    "SubjectFromWebIdentityToken": "subjectFromWebIdentityToken",
    "Provider": "provider",
    "Audience": "audience",
    "Subject": "subject",
    "SubjectType": "subjectType",
    "Issuer": "issuer",
    "NameQualifier": "nameQualifier",
    "Account": "account",
}
"""Scalar answer members an event records. Not ``Credentials.SecretAccessKey``,
``Credentials.SessionToken``, ``WebIdentityToken`` or ``DecodedMessage``."""

_ROLE_ACTIONS = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"})


class AuditFacts:
    """What the engine learnt during one call that the audit event needs (see module doc).

    Mutable on purpose: created by the API before the call, filled by the engine during it.
    """

    __slots__ = ("verified",)

    def __init__(self) -> None:
        self.verified: SamlIdentity | WebIdentity | None = None


def request_facts(request: HTTPConnection, request_id: str) -> RequestFacts:
    """Source address, user agent and request ID of ``request``."""
    client = request.client
    return RequestFacts(
        source_ip=client.host if client else "",
        user_agent=request.headers.get("user-agent", ""),
        request_id=request_id,
    )


def _text(value: object, limit: int = _MAX_VALUE) -> str:
    return shortened(str(value), limit)


# --------------------------------------------------------------------------- userIdentity


def caller_identity(caller: Caller) -> dict[str, Any]:
    """``userIdentity`` of a SigV4 caller, as CloudTrail writes it for each kind."""
    claims = caller.claims
    identity: dict[str, Any] = {
        "type": {"assumed-role": "AssumedRole", "federated-user": "FederatedUser"}.get(
            caller.kind, "IAMUser"
        ),
        "principalId": caller.user_id,
        "arn": caller.arn,
        "accountId": caller.account,
        "accessKeyId": caller.access_key_id,
    }
    if caller.kind in ("user", "session") and caller.user is not None:
        identity["userName"] = caller.user.name
    if claims is None:
        return identity
    context: dict[str, Any] = {}
    if caller.role is not None:
        role = caller.role
        context["sessionIssuer"] = {
            "type": "Role",
            "principalId": role.role_id,
            "arn": role.arn,
            "accountId": role.account,
            "userName": role.name,
        }
    elif caller.kind == "federated-user" and caller.user is not None:
        user = caller.user
        context["sessionIssuer"] = {
            "type": "IAMUser",
            "principalId": user.user_id,
            "arn": user.arn,
            "accountId": user.account,
            "userName": user.name,
        }
    context["attributes"] = {
        "creationDate": iso8601(claims.issued_at),
        "mfaAuthenticated": "true" if claims.mfa else "false",
    }
    if claims.source_identity:
        context["sourceIdentity"] = claims.source_identity
    identity["sessionContext"] = context
    return identity


def unknown_identity(access_key_id: str | None = None) -> dict[str, Any]:
    """``userIdentity`` of a caller the broker could not authenticate or verify."""
    identity: dict[str, Any] = {"type": "Unknown"}
    if access_key_id:
        identity["accessKeyId"] = access_key_id
    return identity


def federated_identity(
    kind: str, *, provider_arn: str, subject: str, qualifier: str
) -> dict[str, Any]:
    """``userIdentity`` of a ``SAMLUser`` or ``WebIdentityUser``.

    ``principalId`` is built as AWS builds it: ``NameQualifier:subject`` for SAML,
    ``provider:audience:subject`` for web identity; ``identityProvider`` is the IAM
    provider ARN (AWS writes the name qualifier there for SAML: the ARN says more).
    """
    principal = (
        f"{qualifier}:{subject}" if kind == "SAMLUser" else f"{provider_arn}:{qualifier}:{subject}"
    )
    return {
        "type": kind,
        "principalId": _text(principal),
        "userName": _text(subject),
        "identityProvider": provider_arn,
        "accountId": provider_arn.split(":")[4] if provider_arn.count(":") >= 5 else "",
    }


def verified_identity(verified: SamlIdentity | WebIdentity) -> dict[str, Any]:
    if isinstance(verified, SamlIdentity):
        return federated_identity(
            "SAMLUser",
            provider_arn=verified.provider_arn,
            subject=verified.subject,
            qualifier=verified.name_qualifier,
        )
    return federated_identity(
        "WebIdentityUser",
        provider_arn=verified.provider_arn,
        subject=verified.subject,
        qualifier=verified.audience,
    )


def proof_details(verified: SamlIdentity | WebIdentity) -> dict[str, Any]:
    """``additionalEventData`` of a federated event: which proof, from which issuer."""
    if isinstance(verified, SamlIdentity):
        return {
            "identityProviderType": "SAML",
            "issuer": _text(verified.issuer),
            "assertionId": _text(verified.assertion_id),
        }
    claims = verified.claims
    aud = claims.get("aud")
    jti = claims.get("jti")
    details: dict[str, Any] = {
        "identityProviderType": "OIDC",
        "iss": _text(verified.issuer),
        "sub": _text(verified.subject),
        "aud": [_text(a) for a in aud[:_MAX_ITEMS]] if isinstance(aud, list) else _text(aud),
    }
    if isinstance(jti, str):
        details["jti"] = _text(jti)
    return details


# --------------------------------------------------------------------------- parameters


def request_parameters(
    params: Mapping[str, Any], verified: SamlIdentity | WebIdentity | None = None
) -> dict[str, Any] | None:
    """``requestParameters``: the allow-listed parameters, with CloudTrail's names."""
    out: dict[str, Any] = {}
    for name, shown in _PARAMETERS.items():
        value = params.get(name)
        if name in _LISTS and not isinstance(value, list | tuple):
            # A call refused before parsing records its wire form: ``Name=`` is an
            # empty list, ``Name.member.N`` are its items.
            items = _wire_list(params, name)
            if items or value is not None:
                value = items
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[shown] = [_text(v) for v in value[:_MAX_ITEMS]]
        elif isinstance(value, int) and not isinstance(value, bool):
            out[shown] = value
        else:
            out[shown] = _text(value)
    tags = params.get("Tags")
    if isinstance(tags, list | tuple):
        out["tags"] = [
            {"key": _text(t.get("Key", "")), "value": _text(t.get("Value", ""))}
            for t in tags[:_MAX_ITEMS]
            if isinstance(t, Mapping)
        ]
    arns = params.get("PolicyArns")
    if isinstance(arns, list | tuple):
        out["policyArns"] = [
            {"arn": _text(a.get("arn", ""))} for a in arns[:_MAX_ITEMS] if isinstance(a, Mapping)
        ]
    if isinstance(params.get("Policy"), str):
        out["policy"] = _text(params["Policy"], _MAX_POLICY)
    if isinstance(verified, SamlIdentity):
        out["sAMLAssertionID"] = _text(verified.assertion_id)
        if verified.session_name is not None:
            out["roleSessionName"] = verified.session_name
    if verified is not None and verified.session_tags:
        out["principalTags"] = {
            _text(k): _text(v) for k, v in list(verified.session_tags.items())[:_MAX_ITEMS]
        }
        if verified.transitive_tag_keys:
            out["transitiveTagKeys"] = list(verified.transitive_tag_keys[:_MAX_ITEMS])
    return out or None


def _wire_list(params: Mapping[str, Any], name: str) -> list[str]:
    """The items ``Name.member.1`` ... of an unparsed list, in order (at most 50)."""
    items: list[str] = []
    for index in range(1, _MAX_ITEMS + 1):
        value = params.get(f"{name}.member.{index}")
        if not isinstance(value, str):
            break
        items.append(_text(value))
    return items


def response_elements(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """``responseElements``: who the session is and when it ends; never a secret."""
    out: dict[str, Any] = {}
    credentials = result.get("Credentials")
    if isinstance(credentials, Mapping):
        out["credentials"] = {
            "accessKeyId": credentials["AccessKeyId"],
            "expiration": iso8601(float(credentials["Expiration"])),
        }
    user = result.get("AssumedRoleUser")
    if isinstance(user, Mapping):
        out["assumedRoleUser"] = {"assumedRoleId": user["AssumedRoleId"], "arn": user["Arn"]}
    federated = result.get("FederatedUser")
    if isinstance(federated, Mapping):
        out["federatedUser"] = {
            "federatedUserId": federated["FederatedUserId"],
            "arn": federated["Arn"],
        }
    for name, shown in _ANSWERS.items():
        value = result.get(name)
        if value is not None:
            out[shown] = value if isinstance(value, int) else _text(value)
    if "WebIdentityToken" in result and "Expiration" in result:
        out["expiration"] = iso8601(float(result["Expiration"]))
    return out or None


def role_resources(role_arn: str, provider_arn: str | None = None) -> list[dict[str, str]]:
    """``resources``: the role assumed (and the SAML provider it was assumed through)."""
    found = [{"ARN": _text(role_arn), "accountId": _account(role_arn), "type": "AWS::IAM::Role"}]
    if provider_arn is not None and ":saml-provider/" in provider_arn:
        found.append(
            {
                "ARN": provider_arn,
                "accountId": _account(provider_arn),
                "type": "AWS::IAM::SAMLProvider",
            }
        )
    return found


def _account(arn: str) -> str:
    fields = arn.split(":", 5)
    return fields[4] if len(fields) == 6 else ""


# --------------------------------------------------------------------------- the event


def record_call(
    trail: AuditTrail,
    *,
    action: str,
    facts: RequestFacts,
    params: Mapping[str, Any],
    caller: Caller | None,
    claimed_key: str | None,
    verified: SamlIdentity | WebIdentity | None,
    result: Mapping[str, Any] | None,
    error: tuple[str, str] | None,
    additional: Mapping[str, Any] | None = None,
) -> None:
    """One STS call's event; ``error`` is ``(code, message)`` for a refused call."""
    if caller is not None:
        identity = caller_identity(caller)
    elif verified is not None:
        identity = verified_identity(verified)
    else:
        identity = unknown_identity(claimed_key)
    details: dict[str, Any] = dict(proof_details(verified)) if verified is not None else {}
    details.update(additional or {})
    role_arn = params.get("RoleArn")
    resources: Sequence[Mapping[str, str]] = ()
    recipient = caller.account if caller is not None else None
    if action in _ROLE_ACTIONS and isinstance(role_arn, str):
        resources = role_resources(role_arn, params.get("PrincipalArn"))
        recipient = _account(role_arn) or recipient
    trail.emit(
        source="sts.amazonaws.com",
        name=action,
        event_type="AwsApiCall",
        facts=facts,
        user_identity=identity,
        request_parameters=request_parameters(params, verified),
        response_elements=None if result is None else response_elements(result),
        error_code=None if error is None else error[0],
        error_message=None if error is None else error[1],
        additional=details,
        resources=resources,
        recipient_account=recipient,
    )
