"""The audit events of the browser and CLI flows: sign-in, role pick, console, CLI approval.

Each is a CloudTrail-shaped event (:mod:`broker.observability.audit`), built from what the
route already holds, never from a cookie, a form secret or a credential:

- ``SignIn`` (``signin.amazonaws.com``): a SAML ACS post or an OIDC callback, verified or
  refused; ``additionalEventData`` names the proof (SAML issuer and assertion ID, or the
  token's ``iss``/``sub``/``aud``/``jti``) and the login provider.
- ``AssumeRoleWithSAML`` / ``AssumeRoleWithWebIdentity`` (``sts.amazonaws.com``): a role
  session minted for a signed-in person (the role picker, ``via: browser``) or for the CLI
  (``/cli/token``, ``via: cli``), shaped like the same API call.
- ``GetSigninToken`` and ``ConsoleLogin`` (``signin.amazonaws.com``): the federation
  endpoint, as AWS records its own (``responseElements.ConsoleLogin``: Success/Failure).
- ``CliLogin`` (``signin.amazonaws.com``): a person approving (or denying) a terminal's
  sign-in, with the role and duration chosen and the flow (``loopback`` or ``device``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection

from broker.identity import FederatedIdentity, SamlIdentity, SessionClaims, WebIdentity
from broker.observability import AuditTrail, current_request_id
from broker.sts.audit import (
    federated_identity,
    proof_details,
    request_facts,
    response_elements,
    role_resources,
    unknown_identity,
    verified_identity,
)
from broker.web.signin import SignedIn

_ACTION_NAMES = {
    "sts:AssumeRoleWithSAML": "AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity": "AssumeRoleWithWebIdentity",
}
_SESSION_TYPES = {"assumed-role": "AssumedRole", "federated-user": "FederatedUser"}


def signed_in_identity(signed_in: SignedIn, identity: FederatedIdentity) -> dict[str, Any]:
    """``userIdentity`` of a person signed in through ``identity``'s provider."""
    if signed_in.protocol == "saml":
        qualifier = identity.context.get("saml:namequalifier")
        kind = "SAMLUser"
    else:
        qualifier = next(
            (v for k, v in identity.context.items() if k.endswith(":aud") and isinstance(v, str)),
            "",
        )
        kind = "WebIdentityUser"
    return federated_identity(
        kind,
        provider_arn=identity.provider_arn,
        subject=signed_in.subject,
        qualifier=qualifier if isinstance(qualifier, str) else "",
    )


def session_identity(claims: SessionClaims, kind: str) -> dict[str, Any]:
    """``userIdentity`` of the role or federated-user session a console sign-in is for."""
    identity: dict[str, Any] = {
        "type": _SESSION_TYPES.get(kind, "Unknown"),
        "principalId": claims.user_id,
        "arn": claims.arn,
        "accountId": claims.account,
    }
    if claims.access_key_id.startswith("ASIA"):
        identity["accessKeyId"] = claims.access_key_id
    return identity


class BrowserAudit:
    """The events above, written to one :class:`AuditTrail`."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    @property
    def enabled(self) -> bool:
        return self._trail.enabled

    def _facts(self, request: HTTPConnection) -> Any:
        return request_facts(request, current_request_id())

    def signin(
        self,
        request: HTTPConnection,
        *,
        protocol: str,
        login: str,
        verified: SamlIdentity | WebIdentity | None,
        error: tuple[str, str] | None,
    ) -> None:
        """A sign-in through ``login`` (a ``login.providers`` name, or the provider ARN)."""
        if not self.enabled:
            return
        details: dict[str, Any] = dict(proof_details(verified)) if verified else {}
        details["loginProvider"] = login
        details["protocol"] = protocol
        self._trail.emit(
            source="signin.amazonaws.com",
            name="SignIn",
            event_type="AwsConsoleSignIn",
            facts=self._facts(request),
            user_identity=verified_identity(verified) if verified else unknown_identity(),
            response_elements={"SignIn": "Failure" if error else "Success"},
            error_code=None if error is None else error[0],
            error_message=None if error is None else error[1],
            additional=details,
            recipient_account=verified.provider_arn.split(":")[4] if verified else None,
        )

    def role_session(
        self,
        request: HTTPConnection,
        signed_in: SignedIn,
        identity: FederatedIdentity,
        *,
        role_arn: str,
        duration: int | None,
        result: Mapping[str, Any] | None,
        error: tuple[str, str] | None,
        via: str,
        **extra: str,
    ) -> None:
        """A role session minted (or refused) for a signed-in person, ``via`` a page or the
        CLI: the ``AssumeRoleWith*`` event the same API call would make."""
        if not self.enabled:
            return
        parameters: dict[str, Any] = {
            "roleArn": role_arn,
            "roleSessionName": signed_in.session_name,
        }
        if duration is not None:
            parameters["durationSeconds"] = duration
        if signed_in.protocol == "saml":
            parameters["principalArn"] = identity.provider_arn
        self._trail.emit(
            source="sts.amazonaws.com",
            name=_ACTION_NAMES[identity.action],
            event_type="AwsApiCall",
            facts=self._facts(request),
            user_identity=signed_in_identity(signed_in, identity),
            request_parameters=parameters,
            response_elements=None if result is None else response_elements(result),
            error_code=None if error is None else error[0],
            error_message=None if error is None else error[1],
            additional={"via": via, "issuer": signed_in.issuer, **extra},
            resources=role_resources(role_arn, identity.provider_arn),
            recipient_account=role_arn.split(":")[4] if role_arn.count(":") >= 5 else None,
        )

    def signin_token(
        self,
        request: HTTPConnection,
        claims: SessionClaims | None,
        *,
        duration: str | None,
        error: str | None,
    ) -> None:
        """``/federation?Action=getSigninToken``: credentials traded for a SigninToken."""
        if not self.enabled:
            return
        self._trail.emit(
            source="signin.amazonaws.com",
            name="GetSigninToken",
            event_type="AwsConsoleSignIn",
            facts=self._facts(request),
            user_identity=unknown_identity()
            if claims is None
            else session_identity(claims, claims.kind),
            request_parameters=None if duration is None else {"sessionDuration": duration[:16]},
            response_elements={"GetSigninToken": "Failure" if error else "Success"},
            error_message=error,
            recipient_account=None if claims is None else claims.account,
        )

    def console_login(
        self,
        request: HTTPConnection,
        claims: SessionClaims | None,
        *,
        destination: str | None,
        error: str | None,
    ) -> None:
        """``/federation?Action=login``: a SigninToken traded for a console session."""
        if not self.enabled:
            return
        kind = ""
        if claims is not None:
            console = claims.extra.get("console")
            kind = str(console.get("kind", "")) if isinstance(console, Mapping) else ""
        additional: dict[str, Any] = {"MFAUsed": "Yes" if claims and claims.mfa else "No"}
        if destination is not None:
            additional["LoginTo"] = destination
        self._trail.emit(
            source="signin.amazonaws.com",
            name="ConsoleLogin",
            event_type="AwsConsoleSignIn",
            facts=self._facts(request),
            user_identity=unknown_identity() if claims is None else session_identity(claims, kind),
            response_elements={"ConsoleLogin": "Failure" if error else "Success"},
            error_message=error,
            additional=additional,
            recipient_account=None if claims is None else claims.account,
        )

    def cli_login(
        self,
        request: HTTPConnection,
        signed_in: SignedIn,
        identity: FederatedIdentity,
        *,
        role_arn: str,
        duration: int | None,
        flow: str,
        approved: bool,
    ) -> None:
        """A person's decision on a terminal's sign-in request."""
        if not self.enabled:
            return
        parameters: dict[str, Any] = {"flow": flow}
        if role_arn:
            parameters["roleArn"] = role_arn
        if duration is not None:
            parameters["durationSeconds"] = duration
        self._trail.emit(
            source="signin.amazonaws.com",
            name="CliLogin",
            event_type="AwsConsoleSignIn",
            facts=self._facts(request),
            user_identity=signed_in_identity(signed_in, identity),
            request_parameters=parameters,
            response_elements={"CliLogin": "Approved" if approved else "Denied"},
            additional={"issuer": signed_in.issuer},
            recipient_account=role_arn.split(":")[4] if role_arn.count(":") >= 5 else None,
        )
