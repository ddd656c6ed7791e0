"""The ``Logins`` map of an identity pools call, each entry verified by the broker's own
verifiers: the same :class:`~broker.identity.WebIdentityVerifier` as
``AssumeRoleWithWebIdentity`` and the same :class:`~broker.identity.SamlVerifier` as
``AssumeRoleWithSAML``, so a login token is checked exactly as strictly as on the STS path.

A ``Logins`` key names a provider the pool lists; the token must come from exactly that
provider (a token from another provider of the account, or of another pool, is refused
even if it verifies). ``cognito-identity.amazonaws.com`` carries a token this broker's
pools signed (the developer flow hands it to ``GetCredentialsForIdentity``); it must be for
this pool. The developer provider name is refused here: only the signed
``GetOpenIdTokenForDeveloperIdentity`` may use it, as in AWS. Refusals become Cognito's
``NotAuthorizedException`` (or ``ExternalServiceException`` when the provider's keys cannot
be had), keeping the verifier's precise reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.errors import StsError, quoted
from broker.identity import (
    FederatedIdentity,
    SamlIdentity,
    SamlVerifier,
    WebIdentity,
    WebIdentityVerifier,
)
from broker.identity.claims import Claims
from broker.pools.directory import Pool, PoolLogin
from broker.pools.identities import LoginRef
from broker.pools.mapping import not_authorized

POOL_TOKEN_LOGIN = "cognito-identity.amazonaws.com"
"""The ``Logins`` key of a token the pool itself issued (AWS's developer enhanced flow)."""


@dataclass(frozen=True)
class VerifiedLogin:
    """One ``Logins`` entry after verification."""

    key: str
    """As the caller sent it."""
    claims: Claims
    login: PoolLogin | None = None
    """The pool's login it is; None for a pool token."""
    ref: LoginRef | None = None
    """What the identity records for it; None for a pool token (it *is* the identity)."""
    audience: str | None = None
    federated: FederatedIdentity | None = None
    saml_roles: tuple[str, ...] = ()
    replay_key: str | None = None
    """Set for single-use providers: claimed once when credentials or a token are minted."""
    expires_at: float = 0.0
    pool_token: WebIdentity | None = None

    @property
    def amr(self) -> tuple[str, ...]:
        """What this login adds to a pool token's ``amr`` (AWS: the provider, then
        ``PROVIDER:CLIENT:SUBJECT``)."""
        if self.pool_token is not None:
            amr = self.pool_token.claims.get("amr")
            return tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else ()
        assert self.login is not None and self.ref is not None
        return (self.key, f"{self.key}:{self.audience or ''}:{self.ref.subject}")


class LoginVerifier:
    """Verifies ``Logins`` for one pool with the broker's verifiers."""

    def __init__(self, *, web: WebIdentityVerifier, saml: SamlVerifier) -> None:
        self._web = web
        self._saml = saml

    async def verify(
        self, pool: Pool, logins: Mapping[str, str], *, pool_tokens: bool
    ) -> list[VerifiedLogin]:
        """Every entry verified, in the pool's ``logins`` order (pool tokens last)."""
        out: list[VerifiedLogin] = []
        for key, token in logins.items():
            if key == POOL_TOKEN_LOGIN and pool_tokens:
                out.append(await self._pool_token(pool, key, token))
                continue
            if key == pool.config.developer_provider_name:
                raise not_authorized(
                    "The developer provider name may be used only in "
                    "GetOpenIdTokenForDeveloperIdentity (a signed call)."
                )
            login = pool.login(key)
            if login is None:
                raise not_authorized(
                    f"Invalid login token. {quoted(key, 100)} is not a provider of identity pool "
                    f"{pool.id}."
                )
            out.append(await self._one(pool, login, key, token))
        order = {login.name: index for index, login in enumerate(pool.logins)}
        out.sort(key=lambda v: order.get(v.login.name, len(order)) if v.login else len(order))
        return out

    async def _one(self, pool: Pool, login: PoolLogin, key: str, token: str) -> VerifiedLogin:
        try:
            if login.kind == "saml":
                saml = await self._saml.verify(token, provider_arn=login.provider_arn, api=True)
                return saml_login(login, key, saml)
            web = await self._web.verify(token, account=pool.account)
        except StsError as exc:
            raise _login_refusal(exc) from None
        return web_login(login, key, web)

    async def _pool_token(self, pool: Pool, key: str, token: str) -> VerifiedLogin:
        try:
            web = await self._web.verify(token, account=pool.account)
        except StsError as exc:
            raise _login_refusal(exc) from None
        if web.issuer != "https://" + POOL_TOKEN_LOGIN or web.audience != pool.id:
            raise not_authorized(
                f"Invalid login token. The {POOL_TOKEN_LOGIN} token is not for identity pool "
                f"{pool.id}."
            )
        return VerifiedLogin(key=key, claims=web.claims, pool_token=web, expires_at=web.expires_at)


def saml_login(login: PoolLogin, key: str, saml: SamlIdentity) -> VerifiedLogin:
    """A verified SAML identity as the login ``key`` of a pool (its provider's roles only)."""
    identity = saml.for_provider(login.provider_arn)
    return VerifiedLogin(
        key=key,
        claims=identity.claims,
        login=login,
        ref=LoginRef(login.provider_arn, identity.subject),
        audience=identity.audience,
        federated=FederatedIdentity.from_saml(identity),
        saml_roles=tuple(r.role_arn for r in identity.roles),
        replay_key=f"saml:{identity.issuer}#{identity.assertion_id}"
        if identity.single_use
        else None,
        expires_at=identity.not_on_or_after,
    )


def web_login(login: PoolLogin, key: str, web: WebIdentity) -> VerifiedLogin:
    """A verified OIDC identity as the login ``key`` of a pool: it must come from exactly
    the provider the key names."""
    if web.provider_arn != login.provider_arn:
        raise not_authorized(
            f"Invalid login token. The token was issued by {web.issuer}, not by the provider "
            f"{quoted(key, 100)} names."
        )
    return VerifiedLogin(
        key=key,
        claims=web.claims,
        login=login,
        ref=LoginRef(login.provider_arn, web.subject),
        audience=web.audience,
        federated=FederatedIdentity.from_web(web),
        replay_key=web.replay_key,
        expires_at=web.expires_at,
    )


def _login_refusal(exc: StsError) -> StsError:
    """A verifier's refusal as Cognito answers it, the precise reason kept."""
    if exc.code == "IDPCommunicationError":
        return StsError("ExternalServiceException", exc.message, 400)
    return not_authorized(f"Invalid login token. {exc.message}")
