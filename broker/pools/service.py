"""The identity pools operations: GetId, GetCredentialsForIdentity, GetOpenIdToken, the
developer variant, GetIdentityPoolRoles and DescribeIdentityPool.

They take validated model members (:mod:`broker.pools.model`) and return result members,
and do no HTTP. Credentials come from the STS engine (:meth:`StsEngine.
assume_for_identity_pool`): the enhanced flow is AWS's GetOpenIdToken followed by
AssumeRoleWithWebIdentity, so the chosen role's trust policy must admit the pool's
``cognito-identity.amazonaws.com`` identity (or, for a SAML login, the SAML provider),
with AWS's condition keys, and a refusal there is AWS's
``InvalidIdentityPoolConfigurationException``. An authenticated identity is served only to
a caller presenting one of its logins (or a token the pool issued for it): knowing an
identity ID is not enough, as in AWS.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from broker.clock import Clock
from broker.directory import Directory
from broker.errors import StsError, quoted
from broker.iam import AuthzRequest
from broker.identity import Caller, FederatedIdentity
from broker.identity.claims import Claims
from broker.identity.oidc import COGNITO_IDENTITY_ISSUER
from broker.identity.templates import (
    SessionOutputs,
    merged_source_identity,
    merged_tags,
    render_session,
)
from broker.issuer import WebIdentityIssuer
from broker.pools.directory import Pool, PoolDirectory
from broker.pools.identities import IdentityRecord, LoginRef, PoolIdentities, resource_not_found
from broker.pools.logins import LoginVerifier, VerifiedLogin
from broker.pools.mapping import (
    RoleChoice,
    choose_role,
    choose_saml_role,
    invalid_configuration,
    not_authorized,
)
from broker.pools.tokens import DEVELOPER_TOKEN_SECONDS, OPEN_ID_TOKEN_SECONDS, mint_pool_token
from broker.store import Store, StoreUnavailableError
from broker.sts.decisions import identity_problem
from broker.sts.engine import RequestInfo, StsEngine
from broker.tags import TagError, validate_tags

log = logging.getLogger("broker.pools")

SESSION_NAME: Final = "CognitoIdentityCredentials"
"""The RoleSessionName AWS gives enhanced-flow sessions."""
_PROVIDER: Final = COGNITO_IDENTITY_ISSUER.removeprefix("https://")
_LOGINS_DO_NOT_MATCH: Final = (
    "Logins don't match. Please include at least one valid login for this identity or "
    "identity pool."
)
_NO_GUESTS: Final = "Unauthenticated access is not supported for this identity pool."
_REPLAY_MARGIN: Final = 300.0


def invalid_parameter(message: str) -> StsError:
    return StsError("InvalidParameterException", message, 400)


class PoolService:
    """The operations, over the compiled pools, the identity store and the STS engine."""

    def __init__(
        self,
        *,
        pools: PoolDirectory,
        directory: Directory,
        identities: PoolIdentities,
        logins: LoginVerifier,
        engine: StsEngine,
        issuer: WebIdentityIssuer,
        store: Store,
        clock: Clock,
        region: str,
    ) -> None:
        self._pools = pools
        self._directory = directory
        self._identities = identities
        self._logins = logins
        self._engine = engine
        self._issuer = issuer
        self._store = store
        self._clock = clock
        self._region = region
        self.unsigned: dict[
            str, Callable[[Mapping[str, Any], RequestInfo], Awaitable[dict[str, Any]]]
        ] = {
            "GetId": self.get_id,
            "GetCredentialsForIdentity": self.get_credentials_for_identity,
            "GetOpenIdToken": self.get_open_id_token,
        }
        self.signed: dict[
            str, Callable[[Mapping[str, Any], Caller, RequestInfo], Awaitable[dict[str, Any]]]
        ] = {
            "GetOpenIdTokenForDeveloperIdentity": self.get_open_id_token_for_developer_identity,
            "GetIdentityPoolRoles": self.get_identity_pool_roles,
            "DescribeIdentityPool": self.describe_identity_pool,
        }

    # -- unsigned --------------------------------------------------------------------------

    async def get_id(self, params: Mapping[str, Any], info: RequestInfo) -> dict[str, Any]:
        pool = self._pool(params["IdentityPoolId"])
        account = params.get("AccountId")
        if account is not None and account != pool.account:
            raise resource_not_found(f"IdentityPool '{pool.id}' not found.")
        logins: Mapping[str, str] = params.get("Logins") or {}
        if not logins:
            if not pool.config.allow_unauthenticated:
                raise not_authorized(_NO_GUESTS)
            record = await self._identities.new_guest(pool.id, info.now)
            return {"IdentityId": record.identity_id}
        verified = await self._logins.verify(pool, logins, pool_tokens=False)
        refs = [v.ref for v in verified if v.ref is not None]
        record = await self._identities.resolve(pool.id, refs, info.now)
        return {"IdentityId": record.identity_id}

    async def get_credentials_for_identity(
        self, params: Mapping[str, Any], info: RequestInfo
    ) -> dict[str, Any]:
        pool, record, verified = await self._identity(params)
        custom: str | None = params.get("CustomRoleArn")
        if not record.authenticated:
            role = pool.config.roles.unauthenticated
            if role is None:
                raise invalid_configuration()
            if custom is not None and custom != role:
                raise not_authorized(
                    "CustomRoleArn is not available to unauthenticated identities."
                )
            federated = self.pool_identity(pool, record, ("unauthenticated",), SessionOutputs())
            session_name = SESSION_NAME
        else:
            choice, federated, session_name = self._authenticated(pool, record, verified, custom)
            role = choice.require()
        try:
            result = await self._engine.assume_for_identity_pool(
                federated,
                role,
                session_name=session_name,
                info=info,
                before_mint=lambda: self._claim_logins(pool, verified, info.now),
            )
        except StsError as exc:
            raise _engine_refusal(exc) from None
        credentials = result["Credentials"]
        log.info("GetCredentialsForIdentity %s -> %s", record.identity_id, role)
        return {
            "IdentityId": record.identity_id,
            "Credentials": {
                "AccessKeyId": credentials["AccessKeyId"],
                "SecretKey": credentials["SecretAccessKey"],
                "SessionToken": credentials["SessionToken"],
                "Expiration": credentials["Expiration"],
            },
        }

    async def get_open_id_token(
        self, params: Mapping[str, Any], info: RequestInfo
    ) -> dict[str, Any]:
        pool, record, verified = await self._identity(params)
        if not pool.config.allow_classic_flow:
            raise invalid_parameter(
                "Basic (classic) flow is not enabled for this identity pool; use "
                "GetCredentialsForIdentity, or set allow_classic_flow: true for it."
            )
        if any(v.login is not None and v.login.kind == "saml" for v in verified):
            raise invalid_parameter(
                "A SAML login gets credentials through GetCredentialsForIdentity only (AWS "
                "supports only the enhanced flow for SAML)."
            )
        outputs = SessionOutputs()
        if record.authenticated:
            amr = _amr(verified)
            first = next((v for v in verified if v.ref is not None), None)
            if first is not None:
                outputs = _outputs(pool, first, {})
        else:
            amr = ("unauthenticated",)
        await self._claim_logins(pool, verified, info.now)
        token = mint_pool_token(
            self._issuer,
            now=info.now,
            pool_id=pool.id,
            identity_id=record.identity_id,
            amr=amr,
            lifetime=OPEN_ID_TOKEN_SECONDS,
            tags=outputs.tags,
            transitive_tag_keys=outputs.transitive_tag_keys,
            source_identity=outputs.source_identity,
        )
        return {"IdentityId": record.identity_id, "Token": token}

    # -- signed ----------------------------------------------------------------------------

    async def get_open_id_token_for_developer_identity(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        pool = self._pool(params["IdentityPoolId"])
        self._authorize(caller, "cognito-identity:GetOpenIdTokenForDeveloperIdentity", pool, info)
        developer = pool.config.developer_provider_name
        if developer is None:
            raise invalid_parameter(
                f"Identity pool {pool.id} has no developer provider; set its "
                "developer_provider_name."
            )
        logins: dict[str, str] = dict(params["Logins"])
        user = logins.pop(developer, None)
        if user is None:
            raise invalid_parameter(f"Logins must hold the developer provider name {developer}.")
        if not 1 <= len(user) <= 1024:
            raise invalid_parameter("The developer user identifier is 1 to 1024 characters.")
        tags: dict[str, str] = dict(params.get("PrincipalTags") or {})
        try:
            validate_tags(tags)
        except TagError as exc:
            raise invalid_parameter(exc.message) from None
        developer_ref = LoginRef(f"developer:{developer}", user)
        identity_id: str | None = params.get("IdentityId")
        if identity_id is not None:
            registered = await self._identities.linked(pool.id, developer_ref)
            given = await self._identities.get(identity_id)
            if registered is not None and (
                given is None or registered.identity_id != given.identity_id
            ):
                raise StsError(
                    "DeveloperUserAlreadyRegisteredException",
                    "The developer user identifier is already registered with Cognito under a "
                    "different identity ID.",
                    400,
                )
        verified = await self._logins.verify(pool, logins, pool_tokens=False)
        refs = [developer_ref, *(v.ref for v in verified if v.ref is not None)]
        record = await self._identities.resolve(pool.id, refs, info.now, identity_id=identity_id)
        duration = int(params.get("TokenDuration", DEVELOPER_TOKEN_SECONDS))
        amr = ("authenticated", developer, f"{developer}:{pool.region}:{user}", *_amr(verified)[1:])
        token = mint_pool_token(
            self._issuer,
            now=info.now,
            pool_id=pool.id,
            identity_id=record.identity_id,
            amr=amr,
            lifetime=duration,
            tags=tags,
        )
        return {"IdentityId": record.identity_id, "Token": token}

    async def get_identity_pool_roles(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        pool = self._pool(params["IdentityPoolId"])
        self._authorize(caller, "cognito-identity:GetIdentityPoolRoles", pool, info)
        roles = pool.config.roles.model_dump(exclude_none=True)
        return {
            "IdentityPoolId": pool.id,
            "Roles": roles or None,
            "RoleMappings": {
                key: mapping.model_dump(exclude_none=True)
                for key, mapping in pool.config.role_mappings.items()
            }
            or None,
        }

    async def describe_identity_pool(
        self, params: Mapping[str, Any], caller: Caller, info: RequestInfo
    ) -> dict[str, Any]:
        pool = self._pool(params["IdentityPoolId"])
        self._authorize(caller, "cognito-identity:DescribeIdentityPool", pool, info)
        supported: dict[str, str] = {}
        oidc: list[str] = []
        user_pools: list[dict[str, Any]] = []
        for login in pool.logins:
            if login.kind == "saml":
                continue
            client_ids = login.client_ids
            if login.oidc_kind == "google":
                supported["accounts.google.com"] = ",".join(client_ids)
            elif login.oidc_kind == "cognito-user-pool":
                user_pools.extend(
                    {"ProviderName": login.name, "ClientId": c, "ServerSideTokenCheck": False}
                    for c in client_ids
                )
            else:
                oidc.append(login.provider_arn)
        return {
            "IdentityPoolId": pool.id,
            "IdentityPoolName": pool.name,
            "AllowUnauthenticatedIdentities": pool.config.allow_unauthenticated,
            "AllowClassicFlow": pool.config.allow_classic_flow,
            "SupportedLoginProviders": supported or None,
            "DeveloperProviderName": pool.config.developer_provider_name,
            "OpenIdConnectProviderARNs": oidc or None,
            "CognitoIdentityProviders": user_pools or None,
            "SamlProviderARNs": [lg.provider_arn for lg in pool.logins if lg.kind == "saml"]
            or None,
        }

    # -- steps -----------------------------------------------------------------------------

    def _pool(self, pool_id: str) -> Pool:
        pool = self._pools.get(pool_id)
        if pool is None:
            raise resource_not_found(f"IdentityPool '{pool_id}' not found.")
        return pool

    async def _identity(
        self, params: Mapping[str, Any]
    ) -> tuple[Pool, IdentityRecord, list[VerifiedLogin]]:
        """The identity a call names, proven by its Logins (or a guest's bare ID)."""
        identity_id: str = params["IdentityId"]
        record = await self._identities.get(identity_id)
        if record is None:
            raise resource_not_found(f"Identity '{identity_id}' not found.")
        pool = self._pool(record.pool_id)
        logins: Mapping[str, str] = params.get("Logins") or {}
        if not logins:
            if record.authenticated:
                raise not_authorized(_LOGINS_DO_NOT_MATCH)
            if not pool.config.allow_unauthenticated:
                raise not_authorized(_NO_GUESTS)
            return pool, record, []
        verified = await self._logins.verify(pool, logins, pool_tokens=True)
        for login in verified:
            token = login.pool_token
            if token is not None:
                owner = await self._identities.get(token.subject)
                if owner is None or owner.identity_id != record.identity_id:
                    raise not_authorized(
                        "Invalid login token. The cognito-identity.amazonaws.com token is for "
                        "another identity."
                    )
        refs = [v.ref for v in verified if v.ref is not None]
        proven = any(v.pool_token is not None for v in verified) or any(
            ref in record.logins for ref in refs
        )
        if record.authenticated and not proven:
            raise not_authorized(_LOGINS_DO_NOT_MATCH)
        if refs:
            record = await self._identities.resolve(
                pool.id, refs, self._clock.time(), identity_id=record.identity_id
            )
        return pool, record, verified

    def _authenticated(
        self,
        pool: Pool,
        record: IdentityRecord,
        verified: Sequence[VerifiedLogin],
        custom: str | None,
    ) -> tuple[RoleChoice, FederatedIdentity, str]:
        """The role of an authenticated identity, and the identity its trust policy sees."""
        logins = [v for v in verified if v.login is not None]
        mapped = next(
            (v for v in logins if v.login is not None and pool.mapping(v.login, v.audience)), None
        )
        driver = mapped or (logins[0] if logins else None)
        if driver is not None and driver.login is not None and driver.login.kind == "saml":
            if mapped is None:
                choice = choose_saml_role(driver.saml_roles, custom)
            else:
                choice = self.choose(pool, driver, custom)
            role = choice.require()
            assert driver.federated is not None
            outputs = _outputs(pool, driver, choice.captures)
            tags, transitive = merged_tags(
                driver.federated.session_tags, driver.federated.transitive_tag_keys, outputs
            )
            federated = FederatedIdentity(
                action=driver.federated.action,
                provider_arn=driver.federated.provider_arn,
                principal_names=driver.federated.principal_names,
                context=driver.federated.context,
                session_tags=tags,
                transitive_tag_keys=transitive,
                source_identity=merged_source_identity(driver.federated.source_identity, outputs),
                roles=(role,),
                max_duration=driver.federated.max_duration,
                not_after=driver.federated.not_after,
            )
            return choice, federated, outputs.role_session_name or SESSION_NAME
        if driver is None:
            choice = choose_role(pool, None, Claims.of({}), custom, ())
            outputs = SessionOutputs()
        else:
            choice = self.choose(pool, driver, custom)
            outputs = _outputs(pool, driver, choice.captures)
        choice.require()
        federated = self.pool_identity(pool, record, _amr(verified), outputs, driver)
        return choice, federated, outputs.role_session_name or SESSION_NAME

    def choose(self, pool: Pool, login: VerifiedLogin, custom: str | None) -> RoleChoice:
        """The mapping decision for one verified login (also what ``explain`` shows)."""
        assert login.login is not None
        mapping = pool.mapping(login.login, login.audience)
        roles = {arn for arn, role in self._directory.roles.items() if role.account == pool.account}
        return choose_role(pool, mapping, login.claims, custom, roles)

    def pool_identity(
        self,
        pool: Pool,
        record: IdentityRecord,
        amr: Sequence[str],
        outputs: SessionOutputs,
        driver: VerifiedLogin | None = None,
    ) -> FederatedIdentity:
        """What AWS's AssumeRoleWithWebIdentity would see for this pool's token."""
        claimed = driver.federated if driver is not None else None
        tags, transitive = merged_tags(
            claimed.session_tags if claimed else {},
            claimed.transitive_tag_keys if claimed else (),
            outputs,
        )
        arn = f"arn:aws:iam::{pool.account}:oidc-provider/{_PROVIDER}"
        return FederatedIdentity(
            action="sts:AssumeRoleWithWebIdentity",
            provider_arn=arn,
            principal_names=(arn, _PROVIDER),
            context={
                f"{_PROVIDER}:aud": pool.id,
                f"{_PROVIDER}:sub": record.identity_id,
                f"{_PROVIDER}:amr": tuple(amr),
            },
            session_tags=tags,
            transitive_tag_keys=transitive,
            source_identity=merged_source_identity(
                claimed.source_identity if claimed else None, outputs
            ),
            roles=None,
        )

    def _authorize(self, caller: Caller, action: str, pool: Pool, info: RequestInfo) -> None:
        """A signed call needs the pool's account and an identity policy allowing it."""
        context = caller.context(
            now=info.now, source_ip=info.source_ip, secure=info.secure, region=self._region
        )
        request = AuthzRequest(action=action, resource=pool.arn, context=context)
        problem = (
            "the identity pool is in another account"
            if caller.account != pool.account
            else identity_problem(caller, self._directory, request)
        )
        if problem is not None:
            raise StsError(
                "AccessDeniedException",
                f"User: {caller.arn} is not authorized to perform: {action} on resource: "
                f"{pool.arn} because {problem}",
                400,
            )

    async def _claim_logins(
        self, pool: Pool, verified: Sequence[VerifiedLogin], now: float
    ) -> None:
        """Single-use providers' tokens and assertions mint once per pool."""
        for login in verified:
            if login.replay_key is None:
                continue
            ttl = max(1.0, login.expires_at - now) + _REPLAY_MARGIN
            try:
                fresh = await self._store.claim(
                    "pool-login-use", f"{pool.id}#{login.replay_key}", ttl
                )
            except StoreUnavailableError:
                raise StsError(
                    "InternalErrorException",
                    "The broker's store is unavailable.",
                    500,
                    sender=False,
                ) from None
            if not fresh:
                raise not_authorized(
                    f"Invalid login token. This {quoted(login.key, 100)} token was already used, "
                    "and its provider is single_use."
                )


def _amr(verified: Sequence[VerifiedLogin]) -> tuple[str, ...]:
    amr = ["authenticated"]
    for login in verified:
        amr.extend(a for a in login.amr if a not in amr)
    return tuple(amr)


def _outputs(pool: Pool, login: VerifiedLogin, captures: Mapping[str, str]) -> SessionOutputs:
    return render_session(pool.session, login.claims, captures)


def _engine_refusal(exc: StsError) -> StsError:
    """The engine's refusal as Cognito words it: a trust policy that does not admit the
    pool's identity is AWS's InvalidIdentityPoolConfigurationException."""
    if exc.code == "AccessDenied":
        return StsError(
            "InvalidIdentityPoolConfigurationException",
            "Invalid identity pool configuration. Check assigned IAM roles for this pool. "
            f"({exc.message})",
            400,
        )
    if exc.code == "IDPRejectedClaim":
        return not_authorized(exc.message)
    if exc.code == "ValidationError":
        return invalid_parameter(exc.message)
    return exc
