"""``sts-broker explain``: every role a token or SAML response would get, and why not the rest.

It builds the broker's own parts from the config (verifiers, the STS engine, the compiled
pools) exactly as ``serve`` does and asks them, so the answer is what a live broker would
do, not a second implementation:

- **verification**: with the providers' keys (fetched like the broker fetches them) or the
  SAML metadata; with ``no_verify`` an OIDC token's signature and times are not checked and
  the report says so first (for a token copied from elsewhere, or an expired fixture);
- **without a pool**: for each account whose providers trust the token's issuer, each of its
  roles through its trust policy (``AssumeRoleWithWebIdentity`` / ``WithSAML``), with the
  statement that admits or each statement's reason for not applying;
- **with a pool**: the pool's role mapping rule by rule, the role chosen and how, every
  other candidate role and why not, then the chosen role's trust policy, as
  ``GetCredentialsForIdentity`` evaluates it.

The identity store is not consulted (a fresh in-memory one is used): the identity ID in
trust conditions on ``cognito-identity.amazonaws.com:sub`` is a placeholder, and said so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from broker.clock import Clock
from broker.config import BrokerConfig
from broker.directory import Directory, Role
from broker.errors import StsError
from broker.identity import (
    FederatedIdentity,
    SamlVerifier,
    TokenSealer,
    WebIdentity,
    WebIdentityVerifier,
)
from broker.identity.templates import render_session
from broker.issuer import WebIdentityIssuer
from broker.pools.directory import Pool, PoolDirectory
from broker.pools.identities import IdentityRecord, PoolIdentities
from broker.pools.logins import LoginVerifier, VerifiedLogin, saml_login, web_login
from broker.pools.mapping import RoleChoice, choose_saml_role
from broker.pools.service import SESSION_NAME, PoolService
from broker.store import MemoryStore
from broker.sts.engine import RequestInfo, StsEngine
from broker.sts.explain import RoleVerdict, explain_roles, render_verdicts, trust_verdict
from broker.sts.messages import AuthorizationMessages

EXPLAIN_SESSION = "explain"
"""The RoleSessionName the STS-path explanation evaluates trust policies with."""


@dataclass(frozen=True)
class Explanation:
    lines: tuple[str, ...]
    granted: int
    """How many roles the identity would get (the command exits 0 when at least one)."""


class _Parts:
    """The broker's parts for one explanation, wired as ``broker.app.create_app`` does."""

    def __init__(self, config: BrokerConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.directory = Directory.build(config)
        self.pools = PoolDirectory.build(config)
        keys = [("explain", os.urandom(32))]
        store = MemoryStore(clock)
        self.issuer = WebIdentityIssuer(config, clock)
        self.web = WebIdentityVerifier(config, clock, pool_keys=self.issuer.jwks())
        self.saml = SamlVerifier(config, clock)
        self.engine = StsEngine(
            directory=self.directory,
            sealer=TokenSealer(keys),
            store=store,
            region=config.region,
            web=self.web,
            saml=self.saml,
            issuer=self.issuer,
            messages=AuthorizationMessages(keys, clock=clock),
        )
        self.service = PoolService(
            pools=self.pools,
            directory=self.directory,
            identities=PoolIdentities(store, secret=keys[0][1]),
            logins=LoginVerifier(web=self.web, saml=self.saml),
            engine=self.engine,
            issuer=self.issuer,
            store=store,
            clock=clock,
            region=config.region,
        )

    def info(self) -> RequestInfo:
        return RequestInfo(now=self.clock.time(), source_ip="", secure=True)

    def roles_of(self, account: str, only: str | None) -> list[Role]:
        return [
            role
            for role in self.directory.roles.values()
            if role.account == account and (only is None or role.arn == only)
        ]

    async def aclose(self) -> None:
        await self.web.aclose()
        await self.saml.aclose()


async def explain(
    config: BrokerConfig,
    text: str,
    *,
    saml: bool,
    clock: Clock,
    pool_id: str | None = None,
    role_arn: str | None = None,
    verify: bool = True,
) -> Explanation:
    """The report for one token (``saml=False``) or base64 SAML response."""
    parts = _Parts(config, clock)
    try:
        if saml:
            return await _explain_saml(parts, text, pool_id, role_arn)
        return await _explain_token(parts, text, pool_id, role_arn, verify)
    finally:
        await parts.aclose()


async def _explain_token(
    parts: _Parts, token: str, pool_id: str | None, role_arn: str | None, verify: bool
) -> Explanation:
    lines: list[str] = []
    named = parts.pools.get(pool_id) if pool_id is not None else None
    if pool_id is not None and named is None:
        return Explanation((f"No identity pool {pool_id} in this config.",), 0)
    accounts = [named.account] if named is not None else [*parts.config.accounts]
    identities: list[WebIdentity] = []
    refusals: list[str] = []
    for account in accounts:
        try:
            if verify:
                identities.append(await parts.web.verify(token, account=account))
            else:
                identities.append(parts.web.read_unverified(token, account=account))
        except StsError as exc:
            refusals.append(f"account {account}: {exc.code}: {exc.message}")
    if not identities:
        lines.append("No role: no account accepts this token.")
        lines.extend(f"  {refusal}" for refusal in refusals)
        return Explanation(tuple(lines), 0)
    if not verify:
        lines.append(
            "NOT VERIFIED (--no-verify): the signature and the times (exp, iat, nbf) were not "
            "checked; everything else is as the broker would read it."
        )
    first = identities[0]
    lines.append(f"Token: iss {first.issuer}, sub {first.subject}, aud {first.audience}")
    if named is not None:
        pool = named
        login = next((lg for lg in pool.logins if lg.provider_arn == first.provider_arn), None)
        if login is None:
            lines.append(
                f"No role: identity pool {pool.id} does not take logins from this provider."
            )
            return Explanation(tuple(lines), 0)
        try:
            verified = web_login(login, login.name, first)
        except StsError as exc:
            lines.append(f"No role: {exc.message}")
            return Explanation(tuple(lines), 0)
        return _explain_pool(parts, pool, verified, role_arn, lines)
    granted = 0
    for identity in identities:
        federated = FederatedIdentity.from_web(identity)
        lines.append(
            f"Account {federated.account}, provider {federated.provider_arn} "
            "(AssumeRoleWithWebIdentity):"
        )
        verdicts = explain_roles(
            parts.engine,
            federated,
            parts.roles_of(federated.account, role_arn),
            session_name=EXPLAIN_SESSION,
            info=parts.info(),
        )
        lines.extend(render_verdicts(verdicts) or ["  (no role to explain)"])
        granted += sum(v.granted for v in verdicts)
        lines.extend(_pools_hint(parts, federated.provider_arn))
    return Explanation(tuple(lines), granted)


async def _explain_saml(
    parts: _Parts, response: str, pool_id: str | None, role_arn: str | None
) -> Explanation:
    try:
        identity = await parts.saml.verify(response, provider_arn=None, api=True)
    except StsError as exc:
        return Explanation(
            (f"No role: the SAML response is refused: {exc.code}: {exc.message}",), 0
        )
    lines = [f"SAML response: Issuer {identity.issuer}, NameID {identity.subject}"]
    providers = list(dict.fromkeys(r.provider_arn for r in identity.roles))
    if pool_id is not None:
        pool = parts.pools.get(pool_id)
        if pool is None:
            return Explanation((f"No identity pool {pool_id} in this config.",), 0)
        login = next((lg for lg in pool.logins if lg.provider_arn in providers), None)
        if login is None:
            lines.append(f"No role: identity pool {pool.id} does not take this SAML provider.")
            return Explanation(tuple(lines), 0)
        return _explain_pool(parts, pool, saml_login(login, login.name, identity), role_arn, lines)
    granted = 0
    for provider in providers:
        federated = FederatedIdentity.from_saml(identity.for_provider(provider))
        lines.append(f"Account {federated.account}, provider {provider} (AssumeRoleWithSAML):")
        verdicts = explain_roles(
            parts.engine,
            federated,
            parts.roles_of(federated.account, role_arn),
            session_name=identity.session_name or EXPLAIN_SESSION,
            info=parts.info(),
        )
        lines.extend(render_verdicts(verdicts))
        granted += sum(v.granted for v in verdicts)
    return Explanation(tuple(lines), granted)


def _pools_hint(parts: _Parts, provider_arn: str) -> list[str]:
    pools = [
        pool.id
        for pool in parts.pools.pools.values()
        if any(login.provider_arn == provider_arn for login in pool.logins)
    ]
    if not pools:
        return []
    return [f"  Identity pools that take this login (see --pool): {', '.join(pools)}"]


def _explain_pool(
    parts: _Parts,
    pool: Pool,
    login: VerifiedLogin,
    role_arn: str | None,
    lines: list[str],
) -> Explanation:
    assert login.login is not None
    mapping = pool.mapping(login.login, login.audience)
    lines.append(f"Identity pool {pool.id} ({pool.name}), login {login.key}:")
    if mapping is None and login.login.kind == "saml":
        lines.append("  no role mapping: the assertion's Role attribute decides")
        choice = choose_saml_role(login.saml_roles, role_arn)
    else:
        if mapping is None:
            lines.append("  no role mapping for this login: the pool's authenticated role")
        else:
            lines.append(
                f"  role mapping {mapping.key}: {mapping.type}, AmbiguousRoleResolution "
                f"{mapping.ambiguous}"
            )
        choice = parts.service.choose(pool, login, role_arn)
    for result in choice.results:
        rule = result.rule
        mark = "matches" if result.matched else "no match"
        lines.append(
            f"    rule {rule.index}: {rule.claim} {rule.match_type} {rule.value!r} -> "
            f"{rule.role_arn}: {mark} ({result.reason})"
        )
    verdicts = _candidates(pool, choice, role_arn)
    if choice.refusal is not None:
        lines.append(f"  No role: {choice.refusal.code}: {choice.refusal.message} ({choice.how})")
        lines.extend(render_verdicts(verdicts))
        return Explanation(tuple(lines), 0)
    assert choice.role_arn is not None
    chosen = parts.directory.role(choice.role_arn)
    verdict: RoleVerdict
    if chosen is None:
        verdict = RoleVerdict(choice.role_arn, False, f"{choice.how}; no such role is configured")
    else:
        verdict = _chosen_verdict(parts, pool, login, chosen, choice)
    lines.append("  Roles (GetCredentialsForIdentity):")
    lines.extend(render_verdicts([verdict, *verdicts]))
    if login.login.kind != "saml":
        lines.append(
            "  (trust conditions on cognito-identity.amazonaws.com:sub see a placeholder "
            "identity ID: explain does not look identities up)"
        )
    return Explanation(tuple(lines), int(verdict.granted))


def _chosen_verdict(
    parts: _Parts, pool: Pool, login: VerifiedLogin, role: Role, choice: RoleChoice
) -> RoleVerdict:
    """The chosen role's trust policy, for the identity GetCredentialsForIdentity uses."""
    try:
        outputs = render_session(pool.session, login.claims, choice.captures)
    except StsError as exc:
        return RoleVerdict(role.arn, False, f"{choice.how}; but {exc.message}")
    if login.login is not None and login.login.kind == "saml" and login.federated is not None:
        identity = FederatedIdentity(
            action=login.federated.action,
            provider_arn=login.federated.provider_arn,
            principal_names=login.federated.principal_names,
            context=login.federated.context,
            session_tags=outputs.tags,
            source_identity=outputs.source_identity,
            roles=(role.arn,),
        )
    else:
        record = IdentityRecord(
            f"{pool.region}:explain", pool.id, 0.0, (login.ref,) if login.ref else ()
        )
        identity = parts.service.pool_identity(
            pool, record, ("authenticated", *login.amr), outputs, login
        )
    return trust_verdict(
        parts.engine,
        identity,
        role,
        session_name=outputs.role_session_name or SESSION_NAME,
        info=parts.info(),
        how=f"chosen: {choice.how}",
    )


def _candidates(pool: Pool, choice: RoleChoice, custom: str | None) -> list[RoleVerdict]:
    """Every other role the pool could give, and why this identity does not get it."""
    out: dict[str, RoleVerdict] = {}
    first_match = next((r for r in choice.results if r.matched), None)
    for result in choice.results:
        if result.matched:
            for arn in result.roles:
                if arn == choice.role_arn or arn in out:
                    continue
                why = (
                    f"rule {result.rule.index} matches too, but rule {first_match.rule.index} "
                    "comes first (CustomRoleArn may choose it)"
                    if first_match is not None and first_match is not result
                    else f"rule {result.rule.index} grants it too; CustomRoleArn may choose it"
                )
                out[arn] = RoleVerdict(arn, False, why)
        elif "${" not in result.rule.role_arn and result.rule.role_arn != choice.role_arn:
            out.setdefault(
                result.rule.role_arn,
                RoleVerdict(
                    result.rule.role_arn, False, f"rule {result.rule.index}: {result.reason}"
                ),
            )
    roles = pool.config.roles
    if roles.authenticated and roles.authenticated != choice.role_arn:
        out.setdefault(
            roles.authenticated,
            RoleVerdict(
                roles.authenticated,
                False,
                "the pool's authenticated role: used only when no rule or token claim chooses",
            ),
        )
    if roles.unauthenticated and roles.unauthenticated != choice.role_arn:
        out.setdefault(
            roles.unauthenticated,
            RoleVerdict(
                roles.unauthenticated, False, "for unauthenticated (guest) identities only"
            ),
        )
    if custom is not None and custom != choice.role_arn:
        out.setdefault(custom, RoleVerdict(custom, False, "asked for (--role), not granted"))
    return list(out.values())


def render(explanation: Explanation) -> str:
    return "\n".join(explanation.lines)
