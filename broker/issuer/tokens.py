"""GetWebIdentityToken: a broker session turned into a signed JWT any OIDC-aware service trusts.

This is outbound federation, the mirror image of :mod:`broker.identity.oidc`: there the
broker verifies someone else's ID tokens, here it vouches for its own principals. The token
follows AWS's documented layout so a relying party configured for AWS works unchanged:

- standard claims ``iss`` (the broker's ``public_url``, where discovery and the JWKS live),
  ``sub`` (the ARN of the calling principal: for a role session the *role* ARN, as in
  AWS's sample token), ``aud`` (a string for one audience, a list for several), ``iat``,
  ``nbf``, ``exp`` and a random ``jti``;
- under the ``https://sts.amazonaws.com/`` namespace: ``aws_account``, ``source_region``,
  ``principal_id`` (the principal's ARN), ``principal_tags`` (the caller's tags; for a
  session, the session tags over the role's), ``request_tags`` (the call's ``Tags``) and
  ``source_identity`` when the session has one. Organization and compute-context claims
  (``org_id``, ``ou_path``, ``ec2_*``, ``lambda_*``) have no meaning here and are absent,
  as AWS omits them when they don't apply.

The refusals are botocore's modelled codes: the account must have opted in
(``OutboundWebIdentityFederationDisabledException``), a token may not outlive the session
that asked for it (``SessionDurationEscalationException``) and the payload is bounded
(``JWTPayloadSizeExceededException``). The payload is serialized here and signed as those
exact bytes, so the size that is checked is the size that is sent.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc import jws

from broker.clock import Clock, iso8601
from broker.config import ISSUER_ALGORITHMS, BrokerConfig, IssuerAlgorithm
from broker.errors import StsError, shortened, validation_error
from broker.identity import Caller
from broker.identity.oidc import SOURCE_IDENTITY_CLAIM, TAGS_CLAIM
from broker.issuer.keys import IssuerKeys
from broker.tags import TagError, validate_tags

CLAIM_NAMESPACE = "https://sts.amazonaws.com/"
"""Where AWS nests its own claims in GetWebIdentityToken JWTs."""
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"

DEFAULT_DURATION = 300
MIN_DURATION = 60
MAX_DURATION = 3600
MAX_AUDIENCES = 10
MAX_AUDIENCE_CHARS = 1000
MAX_REQUEST_TAGS = 50
MAX_PAYLOAD_BYTES = 12288
"""Cap on the JSON payload. AWS does not publish its limit; this one keeps the compact token
(base64 grows it by a third) under the 20000 characters AWS, and this broker's own
verifier, accept as a web identity token, so broker-to-broker federation always fits."""

_SUBJECT_MODES = ("AWSIdentity", "OriginIdentity")
_SCOPE = re.compile(r"[\x21\x23-\x2B\x2D-\x5B\x5D-\x7E]+( [\x21\x23-\x2B\x2D-\x5B\x5D-\x7E]+)*")


class WebIdentityIssuer:
    """Mints the broker's JWTs and describes it as an issuer (discovery document, JWKS)."""

    def __init__(
        self, config: BrokerConfig, clock: Clock, *, keys: IssuerKeys | None = None
    ) -> None:
        self._config = config
        self._clock = clock
        self._keys = keys if keys is not None else IssuerKeys.from_settings(config.issuer)
        self.issuer_url = config.public_url
        """``iss``: the verifier's discovery rule needs it to be exactly the public URL."""
        self.jwks_max_age = config.issuer.jwks_max_age_seconds
        """Seconds verifiers may cache the JWKS and discovery document (``Cache-Control``)."""

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata a verifier reads to find the keys."""
        return {
            "issuer": self.issuer_url,
            "jwks_uri": self.issuer_url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ISSUER_ALGORITHMS),
            "claims_supported": ["aud", "exp", "iat", "iss", "jti", "nbf", "sub", CLAIM_NAMESPACE],
        }

    def jwks(self) -> dict[str, Any]:
        """Every key a token from this issuer may currently be signed with."""
        return self._keys.jwks()

    def mint(
        self,
        caller: Caller,
        *,
        audience: Sequence[str],
        duration: int | None,
        algorithm: str,
        tags: Mapping[str, str],
        subject_mode: str | None,
        scope: str | None,
    ) -> tuple[str, int]:
        """A signed JWT for ``caller`` and its ``exp``, or AWS's refusal as an :class:`StsError`."""
        signing_algorithm = _check_algorithm(algorithm)
        _check_audience(audience)
        lifetime = _check_duration(duration)
        _check_tags(tags)
        _check_scope_form(scope)
        if subject_mode is not None and subject_mode not in _SUBJECT_MODES:
            raise _model_error(
                f"Value '{shortened(subject_mode)}' at 'subjectMode' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(_SUBJECT_MODES)}]"
            )
        account = self._config.accounts.get(caller.account)
        if account is None or not account.outbound_web_identity_federation:
            raise StsError(
                "OutboundWebIdentityFederationDisabledException",
                f"Outbound web identity federation is not enabled for account {caller.account}; "
                "set outbound_web_identity_federation: true for it in the broker config.",
                403,
            )
        if subject_mode == "OriginIdentity":
            # AWS reads the subject from the session's trusted identity propagation context;
            # no broker session carries one, and AWS refuses such sessions this way too.
            raise validation_error(
                "SubjectMode OriginIdentity requires the aws:OriginIdentity/Subject key in the "
                "calling session's trusted identity propagation context, and this session has "
                "none."
            )
        if scope is not None:
            raise validation_error(
                "You can specify Scope only when SubjectMode is OriginIdentity and you request "
                "exactly one Audience."
            )
        now = int(self._clock.time())
        expires_at = now + lifetime
        session = caller.claims
        if session is not None and expires_at > session.expires_at:
            raise StsError(
                "SessionDurationEscalationException",
                f"The requested DurationSeconds ({lifetime}) would make the token outlive the "
                f"calling session, which expires at {iso8601(session.expires_at)}.",
                403,
            )
        payload = _payload(
            self._claims(caller, audience=audience, now=now, expires_at=expires_at, tags=tags)
        )
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise StsError(
                "JWTPayloadSizeExceededException",
                f"The token payload would be {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES} "
                "byte limit; pass fewer or shorter Tags.",
                400,
            )
        return self._sign(payload, signing_algorithm), expires_at

    def sign(self, claims: Mapping[str, Any], algorithm: IssuerAlgorithm = "RS256") -> str:
        """A JWT over ``claims`` with the current key of ``algorithm``: for tokens the broker
        mints as another service it plays (the OpenID tokens of its identity pools, whose
        ``iss`` is Cognito's); verifiers find these keys in the same JWKS."""
        return self._sign(_payload(claims), algorithm)

    def _sign(self, payload: bytes, algorithm: IssuerAlgorithm) -> str:
        key = self._keys.signer(algorithm)
        header = {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
        return jws.serialize_compact(header, payload, key.key, algorithms=[key.algorithm])

    def mint_for_upstream(
        self,
        subject: str,
        *,
        audience: str,
        lifetime: int,
        tags: Mapping[str, str],
        transitive_tag_keys: Sequence[str],
        source_identity: str | None,
    ) -> str:
        """An ID token that vouches for ``subject`` to upstream STS (``via: web-identity``).

        The broker has already decided; this token carries the decision to AWS, which
        checks it against the IAM OIDC provider made for the broker (``iss`` = public_url,
        ``aud`` among its client IDs) and the role's trust policy there. Session tags and
        the source identity travel in AWS's own claims (``https://aws.amazon.com/tags``,
        ``https://aws.amazon.com/source_identity``), the only way AssumeRoleWithWebIdentity
        takes them. RS256: every upstream that accepts one of our algorithms accepts it.
        """
        claims = aws_id_token_claims(
            issuer=self.issuer_url,
            subject=subject,
            audience=audience,
            now=self._clock.time(),
            lifetime=lifetime,
            tags=tags,
            transitive_tag_keys=transitive_tag_keys,
            source_identity=source_identity,
        )
        return self.sign(claims)

    def _claims(
        self,
        caller: Caller,
        *,
        audience: Sequence[str],
        now: int,
        expires_at: int,
        tags: Mapping[str, str],
    ) -> dict[str, Any]:
        aws: dict[str, Any] = {
            "aws_account": caller.account,
            "source_region": self._config.region,
            "principal_id": caller.principal_arn,
        }
        principal_tags = caller.tags()
        if principal_tags:
            aws["principal_tags"] = principal_tags
        if tags:
            aws["request_tags"] = dict(tags)
        if caller.claims is not None and caller.claims.source_identity:
            aws["source_identity"] = caller.claims.source_identity
        return {
            "iss": self.issuer_url,
            "sub": caller.principal_arn,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": str(uuid.uuid4()),
            CLAIM_NAMESPACE: aws,
        }


def aws_id_token_claims(
    *,
    issuer: str,
    subject: str,
    audience: str,
    now: float,
    lifetime: int,
    tags: Mapping[str, str],
    transitive_tag_keys: Sequence[str],
    source_identity: str | None,
) -> dict[str, Any]:
    """An ID token's claims as AssumeRoleWithWebIdentity reads them: the standard ones, a
    fresh ``jti``, and the session tags and source identity in AWS's own claims."""
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    if tags:
        claims[TAGS_CLAIM] = {
            "principal_tags": {key: [value] for key, value in tags.items()},
            "transitive_tag_keys": list(transitive_tag_keys),
        }
    if source_identity is not None:
        claims[SOURCE_IDENTITY_CLAIM] = source_identity
    return claims


def _payload(claims: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are measured and signed."""
    return json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()


def _check_algorithm(algorithm: str) -> IssuerAlgorithm:
    if len(algorithm) != 5:
        raise _model_error(
            f"Value '{shortened(algorithm)}' at 'signingAlgorithm' failed to satisfy constraint: "
            "Member must have length of 5"
        )
    for known in ISSUER_ALGORITHMS:
        if algorithm == known:
            return known
    raise validation_error(
        f"The signing algorithm {algorithm!r} is not supported; use RS256 or ES384."
    )


def _check_audience(audience: Sequence[str]) -> None:
    if not 1 <= len(audience) <= MAX_AUDIENCES:
        raise _model_error(
            "Value at 'audience' failed to satisfy constraint: Member must have length between "
            f"1 and {MAX_AUDIENCES}"
        )
    for index, value in enumerate(audience, start=1):
        if not 1 <= len(value) <= MAX_AUDIENCE_CHARS:
            raise _model_error(
                f"Value at 'audience.{index}' failed to satisfy constraint: Member must have "
                f"length between 1 and {MAX_AUDIENCE_CHARS}"
            )
    if len(set(audience)) != len(audience):
        raise validation_error("Audience lists the same value more than once.")


def _check_duration(duration: int | None) -> int:
    if duration is None:
        return DEFAULT_DURATION
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise _model_error(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must "
            f"have value between {MIN_DURATION} and {MAX_DURATION}"
        )
    return duration


def _check_tags(tags: Mapping[str, str]) -> None:
    """The model's count rule in its words, then AWS's Tag rules (:mod:`broker.tags`)."""
    if len(tags) > MAX_REQUEST_TAGS:
        raise _model_error(
            "Value at 'tags' failed to satisfy constraint: Member must have length less than or "
            f"equal to {MAX_REQUEST_TAGS}"
        )
    try:
        validate_tags(tags)
    except TagError as exc:
        raise validation_error(str(exc)) from None


def _check_scope_form(scope: str | None) -> None:
    """The model's shape for ``Scope`` (RFC 6749 scope tokens), and AWS's no-repeats rule."""
    if scope is None:
        return
    if not (1 <= len(scope) <= 256 and _SCOPE.fullmatch(scope)):
        raise _model_error(
            "Value at 'scope' failed to satisfy constraint: Member must be 1-256 characters of "
            'space-separated scope values (printable ASCII except ", comma and backslash)'
        )
    values = scope.split(" ")
    if len(set(values)) != len(values):
        raise validation_error("Scope repeats a value; each scope value may appear once.")


def _model_error(violation: str) -> StsError:
    """AWS's wording for a request that breaks the API model."""
    return validation_error(f"1 validation error detected: {violation}")
