"""Role sessions of upstream accounts: the broker decides, real AWS STS issues.

This is AWS's *custom identity broker* pattern. The broker authenticates the person (SAML,
OIDC, a signed call), evaluates the role's trust policy from the broker's config exactly as
for a local account, and only then asks upstream STS for the credentials, by the account's
``via``:

- ``assume-role``: ``AssumeRole`` signed with the broker's own AWS credentials, passing the
  session name, duration, session tags and transitive keys, source identity, session
  policies and the account's ``external_id``;
- ``web-identity``: ``AssumeRoleWithWebIdentity`` with a short-lived ID token the broker
  signs as an OIDC issuer for the person (``sub`` = :attr:`RoleGrant.subject`), tags and
  source identity in AWS's claims; the broker then holds no AWS secret at all.

AWS's own trust policy on the role then decides again (defence in depth), and the answer is
AWS's: its keys, its ``Expiration``, its assumed-role ARN. The console sign-in link for
such a session is AWS's federation endpoint's (``getSigninToken``, then ``login``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

from broker.config import BrokerConfig
from broker.directory import Role
from broker.issuer import WebIdentityIssuer
from broker.sts.grants import RoleGrant
from broker.sts.signin import get_signin_token, login_url
from broker.sts.upstream import UpstreamCredentials, UpstreamSts

CONSOLE_MIN_SECONDS = 900
CONSOLE_MAX_SECONDS = 43200
"""``getSigninToken``'s ``SessionDuration`` bounds."""


class UpstreamSessions:
    """Issues :class:`RoleGrant`\\ s of upstream accounts through one upstream STS client."""

    def __init__(
        self,
        config: BrokerConfig,
        issuer: WebIdentityIssuer,
        *,
        sts: UpstreamSts | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        settings = config.upstream
        endpoints = settings.endpoints
        self._partition = settings.partition
        self._audience = settings.audience
        self._token_lifetime = settings.token_lifetime_seconds
        self._issuer = issuer
        self._public_url = config.public_url
        self.federation_endpoint = endpoints.federation_endpoint
        self.console_url = endpoints.console_url
        self._external_ids = {
            account_id: account.upstream.external_id
            for account_id, account in config.accounts.items()
            if account.upstream is not None and account.upstream.external_id is not None
        }
        self._sts = sts or UpstreamSts(
            endpoints.sts_endpoint,
            endpoints.region,
            profile=settings.credentials.profile,
            connect_timeout=float(settings.connect_timeout_seconds),
            read_timeout=float(settings.read_timeout_seconds),
            max_attempts=settings.max_attempts,
        )
        self._timeout = httpx.Timeout(
            float(settings.read_timeout_seconds), connect=float(settings.connect_timeout_seconds)
        )
        self._http = http or httpx.AsyncClient(follow_redirects=False)

    async def aclose(self) -> None:
        await self._sts.close()
        await self._http.aclose()

    def role_arn(self, role: Role) -> str:
        """The role's ARN in the upstream partition (the broker names every role ``arn:aws:``)."""
        return f"arn:{self._partition}:iam::{role.account}:role{role.path}{role.name}"

    async def issue(self, grant: RoleGrant) -> dict[str, Any]:
        """AssumeRole-shaped result members from upstream STS for ``grant``; StsError if refused."""
        role = grant.role
        if role.upstream == "web-identity":
            token = self._issuer.mint_for_upstream(
                grant.subject,
                audience=self._audience,
                lifetime=self._token_lifetime,
                tags=grant.tags,
                transitive_tag_keys=grant.transitive_tag_keys,
                source_identity=grant.source_identity,
            )
            credentials = await self._sts.assume_role_with_web_identity(
                role_arn=self.role_arn(role),
                role_session_name=grant.session_name,
                web_identity_token=token,
                duration_seconds=grant.duration,
                policy=grant.policy_text,
                policy_arns=grant.policy_arns,
            )
        else:
            credentials = await self._sts.assume_role(
                role_arn=self.role_arn(role),
                role_session_name=grant.session_name,
                duration_seconds=grant.duration,
                source_identity=grant.source_identity,
                tags=grant.tags,
                transitive_tag_keys=grant.transitive_tag_keys,
                policy=grant.policy_text,
                policy_arns=grant.policy_arns,
                external_id=self._external_ids.get(role.account),
            )
        return _result(credentials)

    async def console_link(self, credentials: Mapping[str, Any], now: float) -> str:
        """AWS's console sign-in URL for upstream ``Credentials`` (a secret: valid 15 minutes).

        ``getSigninToken`` is called from the broker (the session's keys never go to the
        browser); the console session lasts as long as the credentials, within the
        endpoint's 900-43200 s.
        """
        remaining = math.floor(float(credentials["Expiration"]) - now)
        duration = min(max(remaining, CONSOLE_MIN_SECONDS), CONSOLE_MAX_SECONDS)
        token = await get_signin_token(
            self._http,
            self.federation_endpoint,
            (
                str(credentials["AccessKeyId"]),
                str(credentials["SecretAccessKey"]),
                str(credentials["SessionToken"]),
            ),
            duration,
            timeout=self._timeout,
        )
        return login_url(self.federation_endpoint, token, self._public_url, self.console_url)


def _result(credentials: UpstreamCredentials) -> dict[str, Any]:
    result: dict[str, Any] = {
        "Credentials": {
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
            "SessionToken": credentials.session_token,
            "Expiration": credentials.expiration,
        },
        "AssumedRoleUser": {
            "AssumedRoleId": credentials.assumed_role_id,
            "Arn": credentials.assumed_role_arn,
        },
        "SourceIdentity": credentials.source_identity,
    }
    if credentials.packed_policy_size is not None:
        result["PackedPolicySize"] = credentials.packed_policy_size
    return result
