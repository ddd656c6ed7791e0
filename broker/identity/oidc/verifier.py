"""Web identity: a raw OIDC ID token in, a verified, immutable :class:`WebIdentity` out.

This adapter is the only code that touches a raw JWT. ``AssumeRoleWithWebIdentity`` is
unsigned, so the token is the whole proof, and every rule here is one an attacker would
otherwise use:

- The header is read strictly before anything else: ``alg`` from a fixed list (RS/ES 256,
  384, 512; never ``none``, HMAC or PSS, so an RSA public key can't be replayed as an HMAC
  secret), and no header may bring its own key (``jwk``, ``jku``, ``x5u``, ``x5c``) or demand
  processing we don't do (``crit``, ``cty``). JWE and oversized tokens are refused unread.
- ``iss`` only selects the provider (a dict lookup in the role's account); keys come only
  from that provider's JWKS (:mod:`broker.identity.oidc.keys`); ``kid`` is only a lookup key.
- The signature is checked with ``cryptography`` on the signing input as received (the
  header's ``alg`` picks the hash, the key's type must fit it); only then are claims
  believed. JSON with duplicate member names is refused, so no two parsers can read one
  token two ways.
- Standard claims: exact ``iss``, ``aud`` holding a registered client ID (and ``azp``'s
  rule for several audiences), integer ``exp``/``iat``/``nbf`` within the clock skew, age
  and lifetime bounded; then the issuer kind's own rules (:mod:`broker.identity.oidc.conventions`).
- The replay key is computed from claims (issuer + ``jti``, else a hash of the decoded
  payload), never the token text: an ECDSA signature can be re-encoded, a payload can't.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, cast

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from broker.clock import Clock
from broker.config import AccountConfig, BrokerConfig, OidcProviderConfig
from broker.errors import StsError, invalid_token, quoted, rejected_claim, validation_error
from broker.iam import ContextValue
from broker.identity.claims import Claims, normalise, pointer_condition_keys, pointer_context
from broker.identity.oidc.conventions import (
    COGNITO_IDENTITY_ISSUER,
    SOURCE_IDENTITY_CLAIM,
    TAGS_CLAIM,
    Convention,
    convention_for,
)
from broker.identity.oidc.keys import (
    ALLOWED_ALGORITHMS,
    KeySet,
    KeySource,
    VerificationKey,
    pinned_key_set,
    select_keys,
)
from broker.identity.templates import with_templates
from broker.jsonread import JsonRefusedError, read_json
from broker.observability import Check
from broker.records import fast_init
from broker.tags import TagError, validate_tags

MIN_TOKEN_CHARS = 4
"""AWS's model minimum for ``WebIdentityToken`` (the maximum is ``oidc.max_token_bytes``)."""
_MAX_HEADER_BYTES = 512
_HEADER_CACHE = 256
"""Distinct token headers remembered (a few per issuer key are normal)."""
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_HEADER_NAMES = frozenset({"alg", "kid", "typ", "x5t", "x5t#S256"})
"""``x5t`` is only a certificate thumbprint (GitHub and Entra ID send it); it is ignored."""
_KEY_BEARING = frozenset({"jwk", "jku", "x5u", "x5c"})
_PKCS1 = PKCS1v15()
_RSA_HASHES: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}
_EC_SCHEMES: dict[str, tuple[str, ECDSA]] = {
    "ES256": ("secp256r1", ECDSA(hashes.SHA256())),
    "ES384": ("secp384r1", ECDSA(hashes.SHA384())),
    "ES512": ("secp521r1", ECDSA(hashes.SHA512())),
}
"""RFC 7518 section 3.4: each ES algorithm is bound to one curve (P-256, P-384, P-521)."""


@fast_init
@dataclass(frozen=True)
class WebIdentity:
    """Who a verified ID token says the caller is, in the terms trust policies use."""

    issuer: str
    """The token's exact ``iss``."""
    provider_arn: str
    """``arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH``."""
    principal_names: tuple[str, ...]
    """What ``{"Federated": ...}`` may name: the provider ARN, plus AWS's built-in names."""
    subject: str
    audience: str
    """The matched client ID (Google: ``azp`` when present), AWS's ``Audience``."""
    context: Mapping[str, ContextValue]
    session_tags: Mapping[str, str]
    transitive_tag_keys: tuple[str, ...]
    source_identity: str | None
    replay_key: str | None
    """What a ``single_use`` provider's replay check claims; None for the others, which
    never check (hashing the payload would cost every request for nothing)."""
    expires_at: int
    single_use: bool
    claims: Claims
    """The verified payload after the provider's normalisers (:mod:`broker.identity.claims`),
    for later stages (role picker, identity-pool rules, templates)."""


@dataclass(frozen=True)
class _Provider:
    """A configured provider, resolved once: its ARN, client IDs and conventions."""

    config: OidcProviderConfig
    arn: str
    prefix: str
    client_ids: frozenset[str]
    convention: Convention
    names: frozenset[str]
    """Spellings a ``ProviderId`` may use for this provider."""
    principal_names: tuple[str, ...]
    """What ``{"Federated": ...}`` may name to admit it (worked out once, not per token)."""
    pointer_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The ``PREFIX:/pointer`` condition keys the account's trust policies test."""
    pinned: KeySet | None = None
    """Keys known at start-up instead of the provider's JWKS (the broker's own pools)."""


class _Header(NamedTuple):
    """The two header members the verifier uses, once :func:`_check_header` passed them.

    Named tuples (here and :class:`_Compact`) rather than frozen dataclasses: they are as
    immutable, and every token builds one of each, so their cheaper construction counts.
    """

    alg: str
    kid: str | None


class _Compact(NamedTuple):
    """A compact JWS as read by :meth:`WebIdentityVerifier._read`, before any key is used."""

    header: _Header
    claims: dict[str, Any]
    payload: bytes
    signing_input: bytes
    """``header.payload`` exactly as received: what the signature covers (RFC 7515 5.2)."""
    signature: str
    """The third segment, still base64url: decoded only once there are keys to try."""


class WebIdentityVerifier:
    """Verifies web identity tokens against the OIDC providers of the role's account."""

    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock,
        *,
        http: httpx.AsyncClient | None = None,
        pool_keys: Mapping[str, Any] | None = None,
    ) -> None:
        """``pool_keys``: the JWKS of the broker's own issuer. With it, every account that has
        ``identity_pools`` trusts ``https://cognito-identity.amazonaws.com`` tokens signed
        with those keys, for its pool IDs: what GetOpenIdToken mints (see
        :meth:`_pool_provider`)."""
        settings = config.oidc
        self._clock = clock
        self._skew = config.limits.clock_skew_seconds
        self._max_bytes = settings.max_token_bytes
        self._max_lifetime = settings.max_token_lifetime_seconds
        self._owned_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(follow_redirects=False)
        self._keys = KeySource(settings, clock, self._http)
        self._providers: dict[tuple[str, str], _Provider] = {}
        for account, account_config in config.accounts.items():
            trust = [role.trust_policy for role in account_config.roles.values()]
            for provider in account_config.oidc_providers:
                convention = convention_for(provider.provider_kind)
                arn = provider.arn(account)
                prefix = convention.prefix(provider.arn_path)
                resolved = _Provider(
                    config=provider,
                    arn=arn,
                    prefix=prefix,
                    client_ids=frozenset(provider.client_ids),
                    convention=convention,
                    names=frozenset({provider.url, provider.arn_path, arn}),
                    principal_names=convention.principal_names(arn),
                    pointer_keys=pointer_condition_keys(trust, prefix)
                    if convention.exposes_claims
                    else (),
                )
                for issuer in convention.issuers(provider.url):
                    self._providers[(account, issuer)] = resolved
            if account_config.identity_pools and pool_keys is not None:
                pool_provider = self._pool_provider(account, account_config, pool_keys)
                self._providers[(account, COGNITO_IDENTITY_ISSUER)] = pool_provider

    @staticmethod
    def _pool_provider(account: str, account_config: AccountConfig, pool_keys: object) -> _Provider:
        """The broker as the ``cognito-identity.amazonaws.com`` provider of its own pools.

        An identity pool's basic flow hands the client a token "issued by Cognito" which the
        client then trades with ``AssumeRoleWithWebIdentity``, and AWS's trust policies for
        it name ``cognito-identity.amazonaws.com``. Here the broker's issuer signs that
        token, so in each account that defines pools the broker trusts that issuer name
        with exactly two differences from a configured provider: the keys are the broker's
        own (pinned at start-up, never fetched: the name is not where the keys live) and
        the audiences are the account's pool IDs. The account cannot also configure the
        real Cognito service under that name (a config check refuses it), so a token is
        never checked against the wrong keys; another account's pools are another
        provider, with their own pool IDs.
        """
        config = OidcProviderConfig.model_validate(
            {
                "url": COGNITO_IDENTITY_ISSUER,
                "client_ids": list(account_config.identity_pools),
                "kind": "cognito-identity",
            }
        )
        convention = convention_for("cognito-identity")
        arn = config.arn(account)
        return _Provider(
            config=config,
            arn=arn,
            prefix=convention.prefix(config.arn_path),
            client_ids=frozenset(config.client_ids),
            convention=convention,
            names=frozenset({config.url, config.arn_path, arn}),
            principal_names=convention.principal_names(arn),
            pinned=pinned_key_set(pool_keys),
        )

    async def verify(
        self, token: str, *, account: str, provider_id: str | None = None
    ) -> WebIdentity:
        """The identity in ``token`` if every rule holds; otherwise an :class:`StsError`."""
        parsed = self._read(token)
        header, claims = parsed.header, parsed.claims
        provider = self._provider_for(claims, account, provider_id)
        keys: tuple[VerificationKey, ...] | None
        if provider.pinned is not None:
            keys = select_keys(provider.pinned, kid=header.kid, alg=header.alg)
        else:
            keys = self._keys.cached(provider.config, kid=header.kid, alg=header.alg)
        if keys is None:  # not cached, or stale: the full path (may fetch, may refuse)
            keys = await self._keys.candidates(provider.config, kid=header.kid, alg=header.alg)
        _check_signature(header.alg, parsed.signing_input, parsed.signature, keys)
        expires_at = self._check_times(claims, provider.config)
        return self._identity(parsed, provider, expires_at)

    def read_unverified(self, token: str, *, account: str) -> WebIdentity:
        """What ``token`` would be if its signature and times held: NEVER for a request.

        Only for ``sts-broker explain --no-verify``, which reads a token copied from
        elsewhere (whose keys may be unreachable, or which has expired) to say what it
        would be granted: the claims rules, normalisers, templates and condition keys are
        exactly :meth:`verify`'s; the signature, ``exp``/``iat``/``nbf`` and key lookup are
        skipped, and the caller must say so.
        """
        parsed = self._read(token)
        provider = self._provider_for(parsed.claims, account, None)
        expires_at = parsed.claims.get("exp")
        return self._identity(parsed, provider, expires_at if isinstance(expires_at, int) else 0)

    def _provider_for(
        self, claims: Mapping[str, Any], account: str, provider_id: str | None
    ) -> _Provider:
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise invalid_token("The web identity token has no iss claim.")
        provider = self._providers.get((account, issuer))
        if provider is None:
            raise invalid_token(
                f"No OpenIDConnect provider found in your account for {quoted(issuer, 100)}"
            )
        if provider_id is not None and provider_id not in provider.names:
            raise validation_error(
                f"ProviderId {quoted(provider_id, 100)} does not name the provider that issued "
                f"this token ({provider.config.arn_path}); omit ProviderId for OpenID Connect ID "
                "tokens."
            )
        return provider

    def _identity(self, parsed: _Compact, provider: _Provider, expires_at: int) -> WebIdentity:
        """The identity of a token whose signature and times were checked (or, for
        :meth:`read_unverified`, deliberately not)."""
        claims, payload = parsed.claims, parsed.payload
        issuer = claims["iss"]
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
            raise invalid_token("The token's sub claim must be a string of 1 to 255 characters.")
        provider.convention.check(claims)
        matched = _matched_audience(claims, provider)
        audience = provider.convention.audience(claims, matched)
        tags, transitive = _session_tags(claims.get(TAGS_CLAIM))
        jti = claims.get("jti")
        if jti is not None and not (isinstance(jti, str) and jti):
            raise invalid_token("The token's jti claim must be a non-empty string.")
        source_identity = claims.get(SOURCE_IDENTITY_CLAIM)
        if source_identity is not None and not isinstance(source_identity, str):
            raise rejected_claim(f"The {SOURCE_IDENTITY_CLAIM} claim must be a string.")
        view = normalise(claims, provider.config.claims)
        tags, transitive, source_identity = with_templates(
            provider.config.session, view, tags, transitive, source_identity
        )
        context = provider.convention.context(provider.prefix, view, audience, matched)
        if provider.pointer_keys:
            context.update(pointer_context(view, provider.pointer_keys))
        return WebIdentity(
            issuer=issuer,
            provider_arn=provider.arn,
            principal_names=provider.principal_names,
            subject=subject,
            audience=audience,
            context=MappingProxyType(context),
            session_tags=MappingProxyType(tags),
            transitive_tag_keys=transitive,
            source_identity=source_identity,
            replay_key=_replay_key(issuer, jti, payload) if provider.config.single_use else None,
            expires_at=expires_at,
            single_use=provider.config.single_use,
            claims=view,
        )

    async def key_checks(self, *, wait: float) -> list[Check]:
        """One readiness check per configured key source (issuer, ``jwks_uri`` or file):
        can its keys verify a token now? Stale keys are refreshed, waited for ``wait`` s."""
        sources = {
            (p.config.url, p.config.jwks_uri, p.config.jwks_file): p.config
            for p in self._providers.values()
        }
        problems = await asyncio.gather(
            *(self._keys.check(config, wait=wait) for config in sources.values())
        )
        return [
            Check("oidc_keys", config.url, problem)
            for config, problem in zip(sources.values(), problems, strict=True)
        ]

    async def aclose(self) -> None:
        """Stop key fetches and close the HTTP client if this verifier made it."""
        await self._keys.aclose()
        if self._owned_http:
            await self._http.aclose()

    # -- steps ----------------------------------------------------------------------------

    def _read(self, token: str) -> _Compact:
        """Header and (unverified) payload of a compact JWS, or a refusal of its form."""
        if not isinstance(token, str) or not MIN_TOKEN_CHARS <= len(token) <= self._max_bytes:
            size = len(token) if isinstance(token, str) else 0
            raise validation_error(
                "1 validation error detected: Value at 'webIdentityToken' failed to satisfy "
                f"constraint: Member must have length between {MIN_TOKEN_CHARS} and "
                f"{self._max_bytes} (got {size})"
            )
        segments = token.split(".")
        if len(segments) == 5:
            raise invalid_token(
                "Encrypted tokens (JWE) are not accepted; send the signed ID token (JWS)."
            )
        # An empty signature gets past this check so that the header's refusal (alg none)
        # is the one reported; it is refused right after.
        if not (
            len(segments) == 3
            and _SEGMENT.fullmatch(segments[0])
            and _SEGMENT.fullmatch(segments[1])
            and (segments[2] == "" or _SEGMENT.fullmatch(segments[2]))
        ):
            raise invalid_token(
                "The web identity token is not a JWT (three base64url parts joined by dots)."
            )
        header = _parse_header(segments[0])
        if not segments[2]:
            raise invalid_token("The web identity token is not signed.")
        payload = _b64decode(segments[1], "payload")
        return _Compact(
            header=header,
            claims=_json_object(payload, "payload"),
            payload=payload,
            signing_input=f"{segments[0]}.{segments[1]}".encode("ascii"),
            signature=segments[2],
        )

    def _check_times(self, claims: Mapping[str, Any], provider: OidcProviderConfig) -> int:
        now = self._clock.time()
        expires_at, issued_at, not_before = (claims.get(name) for name in ("exp", "iat", "nbf"))
        for name, value in (("exp", expires_at), ("iat", issued_at)):
            if not _is_int(value):
                raise invalid_token(
                    f"The token's {name} claim is required and must be an integer "
                    "(seconds since 1970)."
                )
        if not_before is not None and not _is_int(not_before):
            raise invalid_token("The token's nbf claim must be an integer (seconds since 1970).")
        assert isinstance(expires_at, int) and isinstance(issued_at, int)
        if now >= expires_at + self._skew:
            raise StsError(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(now)} must be before the expiration "
                f"date/time {expires_at}",
                400,
            )
        if issued_at > now + self._skew:
            raise invalid_token(
                f"The token was issued in the future (iat {issued_at}, now {int(now)}); "
                "check the identity provider's clock."
            )
        if isinstance(not_before, int) and not_before > now + self._skew:
            raise invalid_token(f"The token is not valid before {not_before} (now {int(now)}).")
        lifetime = expires_at - issued_at
        if not 0 < lifetime <= self._max_lifetime:
            raise invalid_token(
                f"The token's lifetime (exp - iat = {lifetime} s) must be between 1 and "
                f"{self._max_lifetime} seconds."
            )
        if now - issued_at > provider.max_token_age:
            raise StsError(
                "ExpiredTokenException",
                f"Token too old: issued at {issued_at}, more than {provider.max_token_age} "
                f"seconds before the current date/time {int(now)}",
                400,
            )
        return expires_at


@functools.lru_cache(maxsize=_HEADER_CACHE)
def _parse_header(segment: str) -> _Header:
    """The checked header of a token whose first segment is ``segment``.

    A pure function of the segment's text (no key, no clock), memoised: every token an
    issuer signs with one key has the same header, so decoding and checking it once per
    distinct header saves that work on almost every request. Refusals raise and are not
    cached; the bound keeps made-up headers from growing the cache.
    """
    header_bytes = _b64decode(segment, "header")
    if len(header_bytes) > _MAX_HEADER_BYTES:
        raise invalid_token(f"The token header is larger than {_MAX_HEADER_BYTES} bytes.")
    return _check_header(_json_object(header_bytes, "header"))


def _check_header(header: Mapping[str, Any]) -> _Header:
    names = set(header)
    if names & _KEY_BEARING:
        found = ", ".join(sorted(names & _KEY_BEARING))
        raise invalid_token(
            f"The token header carries {found}; keys come only from the provider's JWKS."
        )
    if names - _HEADER_NAMES:
        found = ", ".join(repr(name[:32]) for name in sorted(names - _HEADER_NAMES))
        raise invalid_token(f"The token header parameter {found} is not accepted.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        shown = quoted(alg, 100) if isinstance(alg, str) else "missing"
        raise invalid_token(
            f"The token's signing algorithm ({shown}) is not accepted; "
            "use RS256, RS384, RS512, ES256, ES384 or ES512."
        )
    kid = header.get("kid")
    if kid is not None and not (isinstance(kid, str) and 1 <= len(kid) <= 256):
        raise invalid_token("The token's kid must be a string of 1 to 256 characters.")
    typ = header.get("typ")
    if typ is not None and not (isinstance(typ, str) and typ.upper() == "JWT"):
        raise invalid_token("The token's typ must be JWT (an ID token).")
    for name in ("x5t", "x5t#S256"):
        if name in header and not isinstance(header[name], str):
            raise invalid_token(f"The token's {name} must be a string.")
    return _Header(alg=alg, kid=kid)


def _check_signature(
    alg: str, signing_input: bytes, signature: str, keys: tuple[VerificationKey, ...]
) -> None:
    """Accept if one candidate key verifies ``signature`` over ``signing_input`` with ``alg``.

    This is what joserfc's ``deserialize_compact`` did, without re-splitting, re-decoding
    and re-validating the header :meth:`WebIdentityVerifier._read` already checked more
    strictly (alg allow-list, no ``crit``/``b64``/key-bearing members). A key is used only
    for an algorithm it was published for and only if its type (and curve) fits that
    algorithm, so an RSA key can never meet an ES signature or vice versa. Every failure,
    a badly encoded signature included, is the same refusal.
    """
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if raw:
        for key in keys:
            if alg in key.algorithms and _verifies(alg, key, signing_input, raw):
                return
    raise invalid_token("The web identity token's signature is not valid.")


def _verifies(alg: str, key: VerificationKey, signing_input: bytes, signature: bytes) -> bool:
    """One RS*/ES* verification (RFC 7518 3.3 and 3.4); False on any mismatch."""
    try:
        if key.rsa:  # the key's type, found once when its set was parsed
            rsa_hash = _RSA_HASHES.get(alg)
            if rsa_hash is None:
                return False
            cast(RSAPublicKey, key.public).verify(signature, signing_input, _PKCS1, rsa_hash)
            return True
        public = cast(EllipticCurvePublicKey, key.public)
        scheme = _EC_SCHEMES.get(alg)
        if scheme is None or public.curve.name != scheme[0]:
            return False
        # JWS carries R || S, each the curve's size in bytes; cryptography wants DER.
        size = (public.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            return False
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        public.verify(encode_dss_signature(r, s), signing_input, scheme[1])
        return True
    except InvalidSignature:
        return False


def _matched_audience(claims: Mapping[str, Any], provider: _Provider) -> str:
    aud = claims.get("aud")
    values: list[Any] = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not values or len(values) > 100 or not all(isinstance(value, str) for value in values):
        raise invalid_token("The token's aud claim must be a string or a list of strings.")
    matched: str | None = next((v for v in values if v in provider.client_ids), None)
    if matched is None:
        raise rejected_claim(
            f"Incorrect token audience: no aud value is a client ID registered for {provider.arn}."
        )
    azp = claims.get("azp")
    if azp is not None:
        if not isinstance(azp, str):
            raise invalid_token("The token's azp claim must be a string.")
        if len(values) > 1 and azp not in provider.client_ids:
            raise rejected_claim(
                "The token has several audiences and its azp (authorized party) is not a "
                f"client ID registered for {provider.arn}."
            )
    return matched


def _session_tags(raw: object) -> tuple[dict[str, str], tuple[str, ...]]:
    """AWS's tags claim: ``{"principal_tags": {K: [V]}, "transitive_tag_keys": [K]}``, held
    to AWS's Tag rules (:func:`broker.tags.validate_tags`) as the IdP's claim."""
    if raw is None:
        return {}, ()
    if not isinstance(raw, dict):
        raise rejected_claim(f"The {TAGS_CLAIM} claim must be a JSON object.")
    principal = raw.get("principal_tags", {})
    transitive = raw.get("transitive_tag_keys", [])
    if not isinstance(principal, dict) or not isinstance(transitive, list):
        raise rejected_claim(
            f"The {TAGS_CLAIM} claim needs principal_tags (an object) and "
            "transitive_tag_keys (a list)."
        )
    tags: dict[str, str] = {}
    for key, value in principal.items():
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
            raise rejected_claim(
                f"Session tag {quoted(key, 100)}: each principal_tags value must be a list of "
                "exactly one string."
            )
        tags[key] = value[0]
    if not all(isinstance(key, str) for key in transitive):
        raise rejected_claim("transitive_tag_keys must be a list of strings.")
    try:
        validate_tags(tags, transitive)
    except TagError as exc:
        raise rejected_claim(f"Session tags from the {TAGS_CLAIM} claim: {exc}") from None
    return tags, tuple(transitive)


def _replay_key(issuer: str, jti: str | None, payload: bytes) -> str:
    """Issuer + ``jti`` when the token has one, else the payload: never the token's text,
    which a re-encoded signature changes (ECDSA's ``s`` and ``n - s`` both verify)."""
    if jti is None:
        return "payload:" + hashlib.sha256(payload).hexdigest()
    return "jti:" + hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()


def _b64decode(segment: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise invalid_token(f"The token {what} is not valid base64url.") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Strict, bounded JSON (:func:`broker.jsonread.read_json`): an object, UTF-8, no
    repeated names (RFC 7519 section 4), no NaN/Infinity, nesting bounded."""
    try:
        value = read_json(raw, max_size=len(raw))  # the token's size is bounded already
    except JsonRefusedError as exc:
        raise invalid_token(f"The token {what} {exc.reason}.") from None
    if not isinstance(value, dict):
        raise invalid_token(f"The token {what} is not a JSON object.")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
