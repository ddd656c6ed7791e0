"""The STS actions: who may get which credentials, for how long, with what attached.

One engine behind every adapter. It owns AWS's rules for durations, role chaining, MFA,
session tags, source identity and session policies, and mints the credentials. It does no
HTTP: it takes validated parameters (model names, see :mod:`broker.sts.model`) and an
authenticated :class:`~broker.identity.caller.Caller`, and returns the result members the Query
presenter renders.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.clock import iso8601
from broker.directory import Directory, Role
from broker.errors import StsError, access_denied, validation_error
from broker.iam import (
    AuthzRequest,
    ContextValue,
    MalformedPolicyError,
    Principal,
    evaluate_policies,
    parse_policy,
)
from broker.identity import (
    Caller,
    FederatedIdentity,
    SamlRole,
    SamlVerifier,
    SessionClaims,
    TokenSealer,
    WebIdentityVerifier,
)
from broker.ids import account_of_key, new_access_key_id
from broker.issuer import WebIdentityIssuer
from broker.jsonread import JsonRefusedError, read_json
from broker.records import fast_init
from broker.store import Store
from broker.sts.audit import AuditFacts
from broker.sts.decisions import assume_role_problem, identity_problem
from broker.sts.grants import RoleGrant
from broker.sts.messages import AuthorizationMessages
from broker.sts.session_rules import (
    SESSION_TOKEN_DEFAULT_DURATION,
    assume_actions,
    carried_source_identity,
    federated_duration,
    packed_size,
    request_keys,
    role_duration,
    session_tags,
    tag_keys,
    upstream_subject,
    validated_tags,
)
from broker.sts.upstream_sessions import UpstreamSessions
from broker.throttling import Throttle, federated_principal
from broker.totp import STEP_SECONDS, WINDOW, matching_step

log = logging.getLogger("broker.sts")

REPLAY_MARGIN_SECONDS = 300.0
"""Single-use tokens are remembered this much past their expiry (covers clock skew)."""


@fast_init
@dataclass(frozen=True)
class RequestInfo:
    """Facts about the HTTP request that policies may test."""

    now: float
    source_ip: str
    secure: bool
    audit: AuditFacts | None = field(default=None, compare=False)
    """Where a federated action leaves the proof it verified, for the call's audit event."""


Handler = Callable[[Mapping[str, Any], Caller, RequestInfo], Awaitable[dict[str, Any]]]
UnsignedHandler = Callable[[Mapping[str, Any], RequestInfo], Awaitable[dict[str, Any]]]

_ALLOWED_FOR_KIND: dict[str, frozenset[str]] = {
    # AWS: GetSessionToken credentials may call only AssumeRole and GetCallerIdentity in STS
    # (GetSessionToken itself answers with AWS's own message in its handler); federation
    # token credentials only GetCallerIdentity (GetFederationToken likewise).
    "session": frozenset({"AssumeRole", "GetCallerIdentity", "GetSessionToken"}),
    "federated-user": frozenset({"GetCallerIdentity", "GetFederationToken", "GetSessionToken"}),
}


class StsEngine:
    """Every STS action: the signed ones, and the federation ones whose adapter is configured."""

    def __init__(
        self,
        *,
        directory: Directory,
        sealer: TokenSealer,
        store: Store,
        region: str,
        web: WebIdentityVerifier,
        saml: SamlVerifier,
        issuer: WebIdentityIssuer,
        messages: AuthorizationMessages,
        upstream: UpstreamSessions | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        """``throttle``, when given, counts each call against its proven principal's bucket
        (the source address is counted by the Query API before anything is verified)."""
        self._directory = directory
        self._throttle = throttle
        self._sealer = sealer
        self._store = store
        self._region = region
        self._web = web
        self._saml = saml
        self._messages = messages
        self._issuer = issuer
        self._upstream = upstream
        """Issues the sessions of upstream accounts (None when the config has none)."""
        self._handlers: dict[str, Handler] = {
            "GetCallerIdentity": self.get_caller_identity,
            "GetAccessKeyInfo": self.get_access_key_info,
            "GetSessionToken": self.get_session_token,
            "AssumeRole": self.assume_role,
            "GetFederationToken": self.get_federation_token,
            "GetWebIdentityToken": self.get_web_identity_token,
            "DecodeAuthorizationMessage": self.decode_authorization_message,
        }
        self.unsigned: dict[str, UnsignedHandler] = {
            "AssumeRoleWithWebIdentity": self.assume_role_with_web_identity,
            "AssumeRoleWithSAML": self.assume_role_with_saml,
        }
        """Actions that carry their own proof instead of a SigV4 signature."""

    def signed_actions(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def call(
        self, action: str, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        """Run one signed action for an authenticated caller."""
        handler = self._handlers.get(action)
        if handler is None:
            raise StsError("InvalidAction", f"The action {action} is not supported by this broker.")
        if self._throttle is not None:
            await self._throttle.principal(action, caller.access_key_id)
        allowed = _ALLOWED_FOR_KIND.get(caller.kind)
        if allowed is not None and action not in allowed:
            source = "GetSessionToken" if caller.kind == "session" else "GetFederationToken"
            raise access_denied(
                f"User: {caller.arn} is not authorized to perform: sts:{action} with credentials "
                f"from {source}"
            )
        return await handler(params, caller, info)

    # -- actions ---------------------------------------------------------------------------

    async def get_caller_identity(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        """Needs no permission: AWS answers it even when every action is denied."""
        return {"UserId": caller.user_id, "Account": caller.account, "Arn": caller.arn}

    async def get_access_key_info(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        self._require_identity_allow(caller, "sts:GetAccessKeyInfo", "*", info, {})
        key_id: str = params["AccessKeyId"]
        known = self._directory.keys.get(key_id)
        account = known.user.account if known is not None else account_of_key(key_id)
        if account is None:
            raise validation_error(f"The access key ID {key_id} is not of a known form.")
        return {"Account": account}

    async def get_session_token(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        if caller.kind != "user" or caller.user is None:
            raise access_denied("Cannot call GetSessionToken with session credentials")
        duration = int(params.get("DurationSeconds", SESSION_TOKEN_DEFAULT_DURATION))
        mfa = await self._check_mfa(caller, params, info)
        user = caller.user
        now = int(info.now)
        claims = SessionClaims(
            access_key_id=new_access_key_id(user.account),
            account=user.account,
            kind="session",
            arn=user.arn,
            user_id=user.user_id,
            principal_name=user.name,
            principal_path=user.path,
            issued_at=now,
            expires_at=now + duration,
            source_arn=user.arn,
            mfa=mfa,
            mfa_authenticated_at=now if mfa else None,
        )
        return {"Credentials": self._mint(claims)}

    async def get_federation_token(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        """Credentials for a federated user, limited by the policies passed (AWS).

        Effective permissions are the IAM user's policies intersected with the passed session
        policies; with none passed the session can do nothing but GetCallerIdentity. The
        user's policies are read live on every use, so revoking the user revokes its
        federated sessions too.
        """
        if caller.kind != "user" or caller.user is None:
            raise access_denied("Cannot call GetFederationToken with session credentials")
        user = caller.user
        name: str = params["Name"]
        arn = f"arn:aws:sts::{user.account}:federated-user/{name}"
        tags, _ = validated_tags(params.get("Tags", ()), ())
        extra = tag_keys(tags)
        self._require_identity_allow(caller, "sts:GetFederationToken", arn, info, extra)
        if tags:
            self._require_identity_allow(caller, "sts:TagSession", arn, info, extra)
        policy_text, policy_arns = self._session_policies(params, None)
        packed = packed_size(policy_text, policy_arns, params.get("Tags", ()))
        duration = int(params.get("DurationSeconds", SESSION_TOKEN_DEFAULT_DURATION))
        now = int(info.now)
        claims = SessionClaims(
            access_key_id=new_access_key_id(user.account),
            account=user.account,
            kind="federated-user",
            arn=arn,
            user_id=f"{user.account}:{name}",
            principal_name=name,
            principal_path="/",
            issued_at=now,
            expires_at=now + duration,
            source_arn=user.arn,
            tags=tags,
            session_policy=policy_text,
            policy_arns=tuple(policy_arns),
        )
        result: dict[str, Any] = {
            "Credentials": self._mint(claims),
            "FederatedUser": {"FederatedUserId": claims.user_id, "Arn": arn},
        }
        if packed is not None:
            result["PackedPolicySize"] = packed
        return result

    async def decode_authorization_message(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        """AWS's decoded JSON for a deny message, for callers allowed to read it."""
        context = caller.context(
            now=info.now, source_ip=info.source_ip, secure=info.secure, region=self._region
        )
        document = self._messages.decode_for(
            caller, params["EncodedMessage"], self._directory, context=context
        )
        return {"DecodedMessage": json.dumps(document, separators=(",", ":"))}

    async def get_web_identity_token(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        """A JWT for the calling identity, signed by the broker as an OIDC issuer.

        Needs ``sts:GetWebIdentityToken`` in the caller's policies, with AWS's request keys
        so policies can restrict audiences, lifetimes and algorithms.
        """
        tags, _ = validated_tags(params.get("Tags", ()), ())
        keys: dict[str, ContextValue] = {
            "sts:IdentityTokenAudience": tuple(params["Audience"]),
            "sts:DurationSeconds": str(params.get("DurationSeconds", 300)),
            "sts:SigningAlgorithm": params["SigningAlgorithm"],
            **tag_keys(tags),
        }
        self._require_identity_allow(caller, "sts:GetWebIdentityToken", "*", info, keys)
        token, expires_at = self._issuer.mint(
            caller,
            audience=params["Audience"],
            duration=params.get("DurationSeconds"),
            algorithm=params["SigningAlgorithm"],
            tags=tags,
            subject_mode=params.get("SubjectMode"),
            scope=params.get("Scope"),
        )
        return {"WebIdentityToken": token, "Expiration": float(expires_at)}

    async def assume_role(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        role_arn: str = params["RoleArn"]
        session_name: str = params["RoleSessionName"]
        role = self._directory.role(role_arn)
        chained = caller.kind == "assumed-role"
        parent = caller.claims

        mfa_now = await self._check_mfa(caller, params, info)
        tags, transitive = session_tags(params, parent)
        source_identity = carried_source_identity(params.get("SourceIdentity"), parent)
        policy_text, policy_arns = self._session_policies(params, role)
        packed = packed_size(policy_text, policy_arns, params.get("Tags", ()))

        context = caller.context(
            now=info.now, source_ip=info.source_ip, secure=info.secure, region=self._region
        )
        if mfa_now:
            context["aws:MultiFactorAuthPresent"] = "true"
            context["aws:MultiFactorAuthAge"] = "0"
        if "ExternalId" in params:
            context["sts:ExternalId"] = params["ExternalId"]
        context.update(request_keys(session_name, tags, transitive, source_identity))

        for action in assume_actions("sts:AssumeRole", tags, source_identity):
            self._authorize_assume(caller, role, role_arn, action, context)
        assert role is not None  # _authorize_assume refuses an unknown role
        # Only now: telling an unauthorized caller the role's maximum would confirm it exists.
        duration = role_duration(params.get("DurationSeconds"), role, chained)

        now = int(info.now)
        mfa = mfa_now or (parent is not None and parent.mfa)
        mfa_at = (
            now if mfa_now else (parent.mfa_authenticated_at if parent and parent.mfa else None)
        )
        grant = RoleGrant(
            role=role,
            session_name=session_name,
            duration=duration,
            tags=tags,
            transitive_tag_keys=tuple(transitive),
            source_identity=source_identity,
            policy_text=policy_text,
            policy_arns=tuple(policy_arns),
            subject=caller.principal_arn,
            source_arn=parent.source_arn if parent is not None else caller.arn,
            mfa=mfa,
            mfa_authenticated_at=mfa_at,
            chain_depth=(parent.chain_depth + 1) if chained and parent is not None else 0,
            chain_roles=_chain_roles(caller) if chained else (),
        )
        result = await self._issue(grant, packed, now)
        log.info(
            "AssumeRole %s -> %s (%ds, chain %d, mfa %s)",
            caller.arn,
            result["AssumedRoleUser"]["Arn"],
            duration,
            grant.chain_depth,
            mfa,
        )
        return result

    async def assume_role_with_web_identity(
        self, params: Mapping[str, Any], info: RequestInfo
    ) -> dict[str, Any]:
        """Trade a verified OIDC ID token for a role session (unsigned: the token is the proof).

        Every refusal of the role itself says only "Not authorized", as AWS does, so a token
        holder cannot tell a missing role from a trust policy that does not admit them.
        """
        role_arn: str = params["RoleArn"]
        role = self._directory.role(role_arn)
        identity = await self._web.verify(
            params["WebIdentityToken"],
            account=role.account if role is not None else _account_in_arn(role_arn),
            provider_id=params.get("ProviderId"),
        )
        if info.audit is not None:
            info.audit.verified = identity
        if self._throttle is not None:
            await self._throttle.principal(
                "AssumeRoleWithWebIdentity", federated_principal(identity.issuer, identity.subject)
            )

        replay = _SingleUse(
            self._store,
            "web-identity",
            identity.replay_key,  # None unless the provider is single_use
            max(1.0, identity.expires_at - info.now) + REPLAY_MARGIN_SECONDS,
            "This web identity token was already used, and its provider is single_use.",
        )
        result = await self._federated_session(
            FederatedIdentity.from_web(identity),
            role,
            params["RoleSessionName"],
            params,
            info,
            replay=replay,
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "AssumeRoleWithWebIdentity %s/%s -> %s",
                identity.issuer,
                identity.subject,
                result["AssumedRoleUser"]["Arn"],
            )
        result.update(
            SubjectFromWebIdentityToken=identity.subject,
            Provider=identity.provider_arn,
            Audience=identity.audience,
        )
        return result

    async def assume_role_with_saml(
        self, params: Mapping[str, Any], info: RequestInfo
    ) -> dict[str, Any]:
        """Trade a signed SAML Response for a role session (unsigned: the assertion is the proof).

        The same verifier serves the browser ACS, so both paths apply the same rules. The
        role must be one of the assertion's ``Role`` pairs *for the named provider*; an
        assertion may be redeemed for several of its roles, but at most once per role
        while it is valid (REFERENCE: the broker's replay rule).
        """
        role_arn: str = params["RoleArn"]
        provider_arn: str = params["PrincipalArn"]
        identity = await self._saml.verify(
            params["SAMLAssertion"], provider_arn=provider_arn, api=True
        )
        if info.audit is not None:
            info.audit.verified = identity
        if self._throttle is not None:
            await self._throttle.principal(
                "AssumeRoleWithSAML", federated_principal(identity.issuer, identity.subject)
            )
        role = self._directory.role(role_arn)
        if SamlRole(role_arn=role_arn, provider_arn=provider_arn) not in identity.roles:
            raise access_denied(
                "Not authorized to perform sts:AssumeRoleWithSAML: the assertion's Role "
                f"attribute does not pair {role_arn} with {provider_arn}"
            )
        if identity.session_name is None:
            raise StsError(
                "InvalidIdentityToken",
                "The SAML assertion has no https://aws.amazon.com/SAML/Attributes/RoleSessionName"
                " attribute; AWS requires one.",
            )

        replay = _SingleUse(
            self._store,
            "saml-assertion",
            f"{identity.issuer}#{identity.assertion_id}#{role_arn}"
            if identity.single_use
            else None,
            max(1.0, identity.not_on_or_after - info.now) + REPLAY_MARGIN_SECONDS,
            "This SAML assertion was already redeemed for this role.",
        )
        result = await self._federated_session(
            FederatedIdentity.from_saml(identity),
            role,
            identity.session_name,
            params,
            info,
            replay=replay,
        )
        log.info(
            "AssumeRoleWithSAML %s/%s -> %s",
            identity.issuer,
            identity.subject,
            result["AssumedRoleUser"]["Arn"],
        )
        result.update(
            Subject=identity.subject,
            SubjectType=identity.subject_type,
            Issuer=identity.issuer,
            Audience=identity.audience,
            NameQualifier=identity.name_qualifier,
        )
        return result

    async def assume_federated(
        self,
        identity: FederatedIdentity,
        role_arn: str,
        *,
        session_name: str,
        duration: int | None,
        info: RequestInfo,
        via: str = "browser",
        before_mint: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """A role session for an identity verified earlier (a browser login), same rules.

        The IdP proof was verified and consumed once at login; what is checked now is what
        can change since: the role's trust policy, its maximum duration, the SAML session
        bounds. Returns the AssumeRole result members (``Credentials``, ``AssumedRoleUser``).
        ``via`` names the path in the log; ``before_mint`` is as in :meth:`_federated_session`.
        """
        if identity.roles is not None and role_arn not in identity.roles:
            raise access_denied(
                f"Not authorized to perform {identity.action}: the sign-in did not grant {role_arn}"
            )
        role = self._directory.role(role_arn)
        if role is not None and role.account != identity.account:
            role = None  # a provider vouches only within its own account, as in IAM
        params = {} if duration is None else {"DurationSeconds": duration}
        result = await self._federated_session(
            identity, role, session_name, params, info, before_mint=before_mint
        )
        log.info(
            "%s (%s) via %s -> %s",
            identity.action,
            via,
            identity.provider_arn,
            result["AssumedRoleUser"]["Arn"],
        )
        return result

    async def assume_for_identity_pool(
        self,
        identity: FederatedIdentity,
        role_arn: str,
        *,
        session_name: str,
        info: RequestInfo,
        before_mint: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """GetCredentialsForIdentity's session (the enhanced flow), from this same engine.

        AWS documents the enhanced flow as GetOpenIdToken followed by
        AssumeRoleWithWebIdentity: the pool chose ``role_arn`` and ``identity`` is what its
        token would say (``cognito-identity.amazonaws.com:aud``/``:amr``, or the SAML
        provider for a SAML login), so the role's trust policy, its duration and the tag
        rules apply exactly as on the STS path, and so does whatever this engine does for
        the role's account (an upstream account answers with real AWS keys).
        """
        return await self.assume_federated(
            identity,
            role_arn,
            session_name=session_name,
            duration=None,
            info=info,
            via="identity pool",
            before_mint=before_mint,
        )

    def admits(
        self, identity: FederatedIdentity, role: Role, *, session_name: str, info: RequestInfo
    ) -> bool:
        """Whether ``identity`` could assume ``role`` now (to list the roles a person may pick)."""
        if role.account != identity.account:
            return False
        if identity.roles is not None and role.arn not in identity.roles:
            return False
        try:
            self._federated_decision(identity, role, session_name, {}, info)
        except StsError:
            return False
        return True

    async def _federated_session(
        self,
        identity: FederatedIdentity,
        role: Role | None,
        session_name: str,
        params: Mapping[str, Any],
        info: RequestInfo,
        *,
        replay: _SingleUse | None = None,
        before_mint: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """The one federated path: tags, source identity, session policies, trust, duration.

        ``replay`` is claimed once everything else has passed, so a refused request does
        not use up a single-use token or assertion, and released again if upstream STS then
        refuses or cannot be reached (nothing was issued for it). ``before_mint`` runs at
        the same point, for a caller with one-time values of its own (an identity pool's
        single-use logins).
        """
        admitted, duration, tags, transitive, source_identity = self._federated_decision(
            identity, role, session_name, params, info
        )
        policy_text, policy_arns = self._session_policies(params, admitted)
        # The validated tags are the claimed ones (same keys, values and order).
        packed = packed_size(
            policy_text, policy_arns, [{"Key": k, "Value": v} for k, v in tags.items()]
        )
        grant = RoleGrant(
            role=admitted,
            session_name=session_name,
            duration=duration,
            tags=tags,
            transitive_tag_keys=tuple(transitive),
            source_identity=source_identity,
            policy_text=policy_text,
            policy_arns=tuple(policy_arns),
            subject=upstream_subject(identity.provider_arn, identity.subject),
            source_arn=identity.provider_arn,
        )
        if replay is not None:
            await replay.claim()
        if before_mint is not None:
            await before_mint()
        try:
            return await self._issue(grant, packed, int(info.now))
        except StsError:
            if replay is not None:
                await replay.release()
            raise

    def _federated_decision(
        self,
        identity: FederatedIdentity,
        role: Role | None,
        session_name: str,
        params: Mapping[str, Any],
        info: RequestInfo,
    ) -> tuple[Role, int, dict[str, str], list[str], str | None]:
        """(role, duration, tags, transitive keys, source identity) if the trust policy admits."""
        tags, transitive, source_identity, context = self._federated_keys(
            identity, session_name, info
        )
        principal = _federated_principal(tuple(identity.principal_names))
        admitted = _federated_trust(
            role,
            identity.action,
            principal=principal,
            context=context,
            tags=tags,
            source_identity=source_identity,
        )
        duration = federated_duration(params.get("DurationSeconds"), admitted, identity, info.now)
        return admitted, duration, tags, transitive, source_identity

    def trust_requests(
        self, identity: FederatedIdentity, role_arn: str, *, session_name: str, info: RequestInfo
    ) -> list[AuthzRequest]:
        """The questions a role's trust policy must answer yes to for ``identity``: one per
        action the session needs (the main action, TagSession, SetSourceIdentity), with the
        condition keys the decision uses. For ``sts-broker explain``, which shows why each
        statement does or does not apply; :meth:`admits` stays the decision."""
        tags, _, source_identity, context = self._federated_keys(identity, session_name, info)
        principal = _federated_principal(tuple(identity.principal_names))
        return [
            AuthzRequest(action=action, resource=role_arn, context=context, principal=principal)
            for action in assume_actions(identity.action, tags, source_identity)
        ]

    def _federated_keys(
        self, identity: FederatedIdentity, session_name: str, info: RequestInfo
    ) -> tuple[dict[str, str], list[str], str | None, dict[str, ContextValue]]:
        """(tags, transitive keys, source identity, condition keys) of a federated request."""
        claimed_tags = [{"Key": k, "Value": v} for k, v in identity.session_tags.items()]
        tags, transitive = validated_tags(claimed_tags, identity.transitive_tag_keys)
        source_identity = carried_source_identity(identity.source_identity, None)
        context = self._federated_context(info, identity.provider_arn)
        context.update(identity.context)
        context["sts:RoleSessionName"] = session_name
        if source_identity is not None or tags:
            context.update(request_keys(session_name, tags, transitive, source_identity))
        return tags, transitive, source_identity, context

    def _federated_context(self, info: RequestInfo, provider_arn: str) -> dict[str, ContextValue]:
        """Global keys for a federated request (no caller session yet)."""
        context: dict[str, ContextValue] = {
            "aws:CurrentTime": iso8601(info.now),
            "aws:EpochTime": str(int(info.now)),
            "aws:SecureTransport": "true" if info.secure else "false",
            "aws:RequestedRegion": self._region,
            "aws:FederatedProvider": provider_arn,
        }
        if info.source_ip:
            context["aws:SourceIp"] = info.source_ip
        return context

    # -- shared rules ----------------------------------------------------------------------

    def _mint(self, claims: SessionClaims) -> dict[str, Any]:
        token, secret = self._sealer.seal(claims)
        return {
            "AccessKeyId": claims.access_key_id,
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": float(claims.expires_at),
        }

    async def _issue(self, grant: RoleGrant, packed: int | None, now: int) -> dict[str, Any]:
        """AssumeRole-shaped result members: sealed here, or obtained from upstream STS."""
        if grant.role.upstream is None:
            return self._role_result(_claims_of(grant, now), packed)
        if self._upstream is None:  # the app builds it whenever an account is upstream
            raise StsError(
                "ServiceUnavailable", "No upstream STS is configured.", 503, sender=False
            )
        return await self._upstream.issue(grant)

    def _role_result(self, claims: SessionClaims, packed: int | None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "Credentials": self._mint(claims),
            "AssumedRoleUser": {"AssumedRoleId": claims.user_id, "Arn": claims.arn},
            "SourceIdentity": claims.source_identity,
        }
        if packed is not None:
            result["PackedPolicySize"] = packed
        return result

    def _require_identity_allow(
        self,
        caller: Caller,
        action: str,
        resource: str,
        info: RequestInfo,
        extra: Mapping[str, ContextValue],
    ) -> None:
        context = caller.context(
            now=info.now, source_ip=info.source_ip, secure=info.secure, region=self._region
        )
        context.update(extra)
        request = AuthzRequest(action=action, resource=resource, context=context)
        problem = identity_problem(caller, self._directory, request)
        if problem is not None:
            raise access_denied(
                f"User: {caller.arn} is not authorized to perform: {action} on resource: "
                f"{resource} because {problem}"
            )

    def _authorize_assume(
        self,
        caller: Caller,
        role: Role | None,
        role_arn: str,
        action: str,
        context: Mapping[str, ContextValue],
    ) -> None:
        denied = (
            f"User: {caller.arn} is not authorized to perform: {action} on resource: {role_arn}"
        )
        if role is None:
            raise access_denied(denied)
        problem = assume_role_problem(caller, role, action, context, self._directory)
        if problem is not None:
            raise access_denied(f"{denied}{problem}")

    async def _check_mfa(
        self, caller: Caller, params: Mapping[str, Any], info: RequestInfo
    ) -> bool:
        """Verify ``SerialNumber``/``TokenCode`` if given; a code is accepted once per device."""
        serial = params.get("SerialNumber")
        code = params.get("TokenCode")
        if serial is None and code is None:
            return False
        if serial is None or code is None:
            raise validation_error("SerialNumber and TokenCode must be given together.")
        user = caller.user
        device = user.mfa_devices.get(serial) if user is not None else None
        if device is None:
            raise access_denied(
                "MultiFactorAuthentication failed, unable to validate MFA code. Please verify "
                "your MFA serial number is valid and associated with this user."
            )
        step = matching_step(device.secret, code, info.now)
        if step is None:
            raise access_denied(
                "MultiFactorAuthentication failed with invalid MFA one time pass code."
            )
        ttl = (2 * WINDOW + 2) * STEP_SECONDS
        if not await self._store.claim("mfa", f"{serial}#{step}", ttl):
            raise access_denied(
                "MultiFactorAuthentication failed with invalid MFA one time pass code. "
                "This code was already used; wait for the next one."
            )
        return True

    def _session_policies(
        self, params: Mapping[str, Any], role: Role | None
    ) -> tuple[str | None, list[str]]:
        """Validate ``Policy`` and ``PolicyArns``; return the minified text and the ARNs.

        The token carries the text, not the parsed form; callers parse it (cached) on use.
        For a role of an upstream account the ARNs name AWS's managed policies, which AWS
        checks; the broker's ``managed_policies`` apply to its own sessions only.
        """
        text: str | None = params.get("Policy")
        if text is not None:
            try:
                # The model bounds the text to 2048 characters already.
                document = read_json(text, max_size=len(text))
            except JsonRefusedError as exc:
                reason = (
                    "The policy is not in the valid JSON format."  # AWS's words
                    if exc.kind == "syntax"
                    else f"The policy {exc.reason}."
                )
                raise StsError("MalformedPolicyDocument", reason) from None
            try:
                parse_policy(document, kind="session", name="session policy")
            except MalformedPolicyError as exc:
                raise StsError("MalformedPolicyDocument", exc.reason) from None
            text = json.dumps(document, separators=(",", ":"))
        arns = [item["arn"] for item in params.get("PolicyArns", ())]
        if role is not None and role.upstream is not None:
            return text, arns
        for arn in arns:
            if self._directory.managed_policy(arn) is None:
                raise validation_error(
                    f"Policy {arn} does not exist or is not attachable (PolicyArns may name "
                    "only policies under managed_policies in the broker config)."
                )
        return text, arns


def _federated_trust(
    role: Role | None,
    action: str,
    *,
    principal: Principal,
    context: Mapping[str, ContextValue],
    tags: Mapping[str, str],
    source_identity: str | None,
) -> Role:
    """The role's trust policy must admit the federated principal for every action needed.

    Refusals say only "Not authorized" for the main action, as AWS does, so a token or
    assertion holder cannot tell a missing role from a trust policy that does not admit
    them; a missing TagSession/SetSourceIdentity grant is named, since the role's trust
    policy already admitted the holder.
    """
    if role is None:
        raise access_denied(f"Not authorized to perform {action}")
    for needed in assume_actions(action, tags, source_identity):
        request = AuthzRequest(
            action=needed, resource=role.arn, context=context, principal=principal
        )
        trust = evaluate_policies((role.trust_policy,), request)
        if trust.denied or not trust.allowed:
            if needed != action:
                raise access_denied(
                    f"Not authorized to perform {action}: the trust policy does not allow {needed}"
                )
            raise access_denied(f"Not authorized to perform {action}")
    return role


@functools.lru_cache(maxsize=256)
def _federated_principal(names: tuple[str, ...]) -> Principal:
    """The ``Federated`` principal a provider's names make (immutable, so shared per name
    set: every federated request needs one)."""
    return Principal(kind="Federated", arns=names, account=None)


def _claims_of(grant: RoleGrant, now: int) -> SessionClaims:
    """The sealed claims of a local role session, whichever AssumeRole* action granted it."""
    role, session_name = grant.role, grant.session_name
    return SessionClaims(
        access_key_id=new_access_key_id(role.account),
        account=role.account,
        kind="assumed-role",
        arn=f"arn:aws:sts::{role.account}:assumed-role/{role.name}/{session_name}",
        user_id=f"{role.role_id}:{session_name}",
        principal_name=role.name,
        principal_path=role.path,
        issued_at=now,
        expires_at=now + grant.duration,
        source_arn=grant.source_arn,
        tags=dict(grant.tags),
        transitive_tag_keys=tuple(grant.transitive_tag_keys),
        source_identity=grant.source_identity,
        session_policy=grant.policy_text,
        policy_arns=tuple(grant.policy_arns),
        mfa=grant.mfa,
        mfa_authenticated_at=grant.mfa_authenticated_at,
        chain_depth=grant.chain_depth,
        chain_roles=tuple(grant.chain_roles),
    )


class _SingleUse:
    """A single-use token's or assertion's replay record: claimed atomically in the Store
    just before issuing, released if nothing was issued after all. ``key`` None: not
    single-use, nothing to record."""

    def __init__(self, store: Store, namespace: str, key: str | None, ttl: float, used: str):
        self._store = store
        self._namespace = namespace
        self._key = key
        self._ttl = ttl
        self._used = used

    async def claim(self) -> None:
        if self._key is not None and not await self._store.claim(
            self._namespace, self._key, self._ttl
        ):
            raise StsError("InvalidIdentityToken", self._used)

    async def release(self) -> None:
        if self._key is not None:
            await self._store.delete(self._namespace, self._key)


def _chain_roles(caller: Caller) -> tuple[str, ...]:
    """The roles a session chained from ``caller`` descends from: the caller's own chain
    and its role, each once (a revocation of any of them reaches the new session)."""
    inherited = caller.claims.chain_roles if caller.claims is not None else ()
    return tuple(dict.fromkeys((*inherited, caller.principal_arn)))


def _account_in_arn(arn: str) -> str:
    """The account field of an ARN (``arn:aws:iam::ACCOUNT:role/...``), or "" if malformed."""
    fields = arn.split(":", 5)
    return fields[4] if len(fields) == 6 else ""
