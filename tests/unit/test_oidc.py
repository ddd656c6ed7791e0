"""Web identity verification: real keys, real tokens, a real issuer on loopback.

The helpers at the top (:class:`Issuer`, :func:`make_config`, :func:`refusal`) are shared with
``test_jwks.py`` and ``tests/security/test_oidc_attacks.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from broker.clock import FrozenClock
from broker.config import BrokerConfig, OidcProviderConfig, infer_oidc_kind
from broker.errors import StsError
from broker.identity import WebIdentity, WebIdentityVerifier

ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
CLIENT = "client-app"
NOW = 1_900_000_000.0

# --------------------------------------------------------------------------- shared helpers

_RSA_CACHE: dict[int, RSAKey] = {}


def rsa_key(bits: int = 2048, *, fresh: bool = False) -> RSAKey:
    """An RSA private key (cached per size: generating one takes ~50 ms)."""
    if fresh or bits not in _RSA_CACHE:
        with warnings.catch_warnings():  # weak keys are made on purpose, to be refused
            warnings.simplefilter("ignore", SecurityWarning)
            key = RSAKey.generate_key(bits)
        if fresh:
            return key
        _RSA_CACHE[bits] = key
    return _RSA_CACHE[bits]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: RSAKey | ECKey, kid: str | None, **extra: Any) -> dict[str, Any]:
    data = dict(key.as_dict(private=False))
    if kid is not None:
        data["kid"] = kid
    data.update(extra)
    return data


def sign(
    key: RSAKey | ECKey,
    claims: dict[str, Any] | str | bytes,
    *,
    alg: str = "RS256",
    kid: str | None = "k1",
    **header: Any,
) -> str:
    """A compact JWS over ``claims`` (a dict, or raw text/bytes for hostile payloads)."""
    protected: dict[str, Any] = {"alg": alg, **header}
    if kid is not None:
        protected["kid"] = kid
    payload = json.dumps(claims) if isinstance(claims, dict) else claims
    return jws.serialize_compact(protected, payload, key, algorithms=[alg])


class Issuer:
    """A real OIDC issuer on 127.0.0.1: discovery and JWKS over HTTP, every request counted."""

    def __init__(self, path: str = "/realm") -> None:
        self.path = path
        self.jwks: list[dict[str, Any]] = []
        self.hits: Counter[str] = Counter()
        self.cache_control: str | None = None
        self.discovery_extra: dict[str, Any] = {}
        self.jwks_status = 200
        self.jwks_raw: bytes | None = None
        self.redirect_to = ""
        self.base = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.base + self.path

    def add_rsa(self, kid: str | None = "k1", bits: int = 2048, **extra: Any) -> RSAKey:
        key = rsa_key(bits)
        self.jwks.append(public_jwk(key, kid, **extra))
        return key

    def add_ec(self, kid: str | None = "e1", crv: str = "P-256", **extra: Any) -> ECKey:
        key = ECKey.generate_key(crv)
        self.jwks.append(public_jwk(key, kid, **extra))
        return key

    def _app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            self.hits["discovery"] += 1
            doc = {"issuer": self.url, "jwks_uri": self.url + "/jwks", **self.discovery_extra}
            return JSONResponse(doc)

        async def keys(request: Request) -> Response:
            self.hits["jwks"] += 1
            headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
            if self.jwks_raw is not None:
                return Response(self.jwks_raw, self.jwks_status, headers=headers)
            return JSONResponse({"keys": self.jwks}, self.jwks_status, headers=headers)

        async def moved(request: Request) -> Response:
            self.hits["moved"] += 1
            return RedirectResponse(self.redirect_to, 302)

        return Starlette(
            routes=[
                Route(self.path + "/.well-known/openid-configuration", discovery),
                Route(self.path + "/jwks", keys),
                Route("/moved", moved),
            ]
        )

    def start(self) -> Issuer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "issuer did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer().start()
    yield running
    running.stop()


def make_config(*providers: dict[str, Any], **top: Any) -> BrokerConfig:
    """A config whose account 111111111111 trusts ``providers`` (and only them)."""
    data: dict[str, Any] = {
        "public_url": "http://127.0.0.1:8080",
        "accounts": {ACCOUNT: {"oidc_providers": list(providers)}, OTHER_ACCOUNT: {}},
        **top,
    }
    return BrokerConfig.model_validate(data)


def claims_for(url: str, **extra: Any) -> dict[str, Any]:
    """Sound claims for a token issued at ``NOW`` by ``url`` for ``CLIENT``."""
    claims: dict[str, Any] = {
        "iss": url,
        "sub": "user-1",
        "aud": CLIENT,
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }
    claims.update(extra)
    return {name: value for name, value in claims.items() if value is not None}


def verify_with(
    config: BrokerConfig,
    tokens: list[str],
    *,
    clock: FrozenClock | None = None,
    account: str = ACCOUNT,
    provider_id: str | None = None,
    between: Callable[[int], None] | None = None,
) -> list[WebIdentity | StsError]:
    """Verify tokens in order with one verifier; each result is the identity or the refusal."""

    async def run() -> list[WebIdentity | StsError]:
        verifier = WebIdentityVerifier(config, clock or FrozenClock(NOW))
        out: list[WebIdentity | StsError] = []
        try:
            for index, token in enumerate(tokens):
                if between is not None:
                    between(index)
                try:
                    out.append(
                        await verifier.verify(token, account=account, provider_id=provider_id)
                    )
                except StsError as exc:
                    out.append(exc)
        finally:
            await verifier.aclose()
        return out

    return asyncio.run(run())


def identity(config: BrokerConfig, token: str, **kwargs: Any) -> WebIdentity:
    (result,) = verify_with(config, [token], **kwargs)
    assert isinstance(result, WebIdentity), result
    return result


def refusal(config: BrokerConfig, token: str, **kwargs: Any) -> StsError:
    (result,) = verify_with(config, [token], **kwargs)
    assert isinstance(result, StsError), result
    assert token not in result.message
    return result


def assert_refused(error: StsError, code: str, status: int, fragment: str = "") -> None:
    assert (error.code, error.status) == (code, status), error
    assert fragment in error.message, error.message


# --------------------------------------------------------------------------- happy paths


def test_a_token_from_a_discovered_issuer_becomes_a_web_identity(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT, "other"]})
    claims = claims_for(issuer.url, amr=["pwd", "mfa"], email="a@example.com", groups=["x"])
    result = identity(config, sign(key, claims))
    path = issuer.url.removeprefix("http://")
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{path}"
    assert result.issuer == issuer.url
    assert result.provider_arn == arn
    assert result.principal_names == (arn,)
    assert (result.subject, result.audience) == ("user-1", CLIENT)
    assert result.expires_at == int(NOW) + 3600
    assert result.single_use is False
    assert dict(result.claims) == claims
    assert dict(result.context) == {
        f"{path}:iss": issuer.url,
        f"{path}:aud": CLIENT,
        f"{path}:sub": "user-1",
        f"{path}:amr": ("pwd", "mfa"),
        f"{path}:email": "a@example.com",
        f"{path}:groups": ("x",),
    }
    assert (dict(result.session_tags), result.transitive_tag_keys) == ({}, ())
    assert result.source_identity is None
    assert result.replay_key is None, "not single_use: no replay check, so no key"


@pytest.mark.parametrize(
    ("alg", "curve"),
    [
        ("RS256", None),
        ("RS384", None),
        ("RS512", None),
        ("ES256", "P-256"),
        ("ES384", "P-384"),
        ("ES512", "P-521"),
    ],
)
def test_every_aws_algorithm_verifies(issuer: Issuer, alg: str, curve: str | None) -> None:
    key: RSAKey | ECKey = issuer.add_ec("k1", curve) if curve else issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    assert identity(config, sign(key, claims_for(issuer.url), alg=alg)).subject == "user-1"


def test_token_without_kid_is_tried_against_the_keys_of_its_algorithm(issuer: Issuer) -> None:
    issuer.add_ec("e1")
    key = issuer.add_rsa(None)
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    assert identity(config, sign(key, claims_for(issuer.url), kid=None)).subject == "user-1"


def test_replay_key_is_issuer_and_jti_when_present(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT], "single_use": True})
    first = identity(config, sign(key, claims_for(issuer.url, jti="abc")))
    second = identity(config, sign(key, claims_for(issuer.url, jti="abc", sub="user-2")))
    third = identity(config, sign(key, claims_for(issuer.url, jti="abd")))
    assert first.replay_key == second.replay_key != third.replay_key
    assert first.replay_key.startswith("jti:")
    assert first.single_use is True
    assert_refused(
        refusal(config, sign(key, claims_for(issuer.url, jti=7))), "InvalidIdentityToken", 400
    )


def test_replay_key_without_jti_is_the_payload_hash(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT], "single_use": True})
    first = identity(config, sign(key, claims_for(issuer.url)))
    second = identity(config, sign(key, claims_for(issuer.url, sub="user-2")))
    assert first.replay_key is not None and first.replay_key.startswith("payload:")
    assert first.replay_key != second.replay_key


@pytest.mark.parametrize("jti", [7, "", ["a"]])
def test_malformed_jti_is_refused_whether_or_not_single_use(issuer: Issuer, jti: object) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    claims = {**claims_for(issuer.url), "jti": jti}
    assert_refused(refusal(config, sign(key, claims)), "InvalidIdentityToken", 400, "jti")


def test_provider_id_must_name_the_provider_when_given(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    token = sign(key, claims_for(issuer.url))
    path = issuer.url.removeprefix("http://")
    assert identity(config, token, provider_id=path).subject == "user-1"
    assert_refused(
        refusal(config, token, provider_id="graph.facebook.com"),
        "ValidationError",
        400,
        "does not name the provider",
    )


def test_only_the_role_accounts_providers_apply(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    error = refusal(config, sign(key, claims_for(issuer.url)), account=OTHER_ACCOUNT)
    assert_refused(error, "InvalidIdentityToken", 400, "No OpenIDConnect provider found")
    assert issuer.hits["jwks"] == 0


def test_offline_jwks_file_needs_no_network(tmp_path: Path) -> None:
    key = rsa_key()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [public_jwk(key, "k1")]}))
    url = "http://127.0.0.1:9/nowhere"  # discard port: any fetch would fail
    config = make_config({"url": url, "client_ids": [CLIENT], "jwks_file": str(path)})
    assert identity(config, sign(key, claims_for(url))).subject == "user-1"


def test_configured_jwks_uri_skips_discovery(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(
        {"url": issuer.url, "client_ids": [CLIENT], "jwks_uri": issuer.url + "/jwks"}
    )
    assert identity(config, sign(key, claims_for(issuer.url))).subject == "user-1"
    assert issuer.hits == Counter({"jwks": 1})


# --------------------------------------------------------------------------- claims


def test_audience_must_hold_a_registered_client_id(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    listed = identity(config, sign(key, claims_for(issuer.url, aud=["x", CLIENT])))
    assert listed.audience == CLIENT
    for aud in ("someone-else", ["a", "b"]):
        error = refusal(config, sign(key, claims_for(issuer.url, aud=aud)))
        assert_refused(error, "IDPRejectedClaim", 403, "Incorrect token audience")
    for aud in (None, [], 5, [CLIENT, 5]):
        error = refusal(config, sign(key, claims_for(issuer.url, aud=aud)))
        assert_refused(error, "InvalidIdentityToken", 400, "aud")


def test_several_audiences_need_a_registered_azp(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    ok = claims_for(issuer.url, aud=[CLIENT, "api"], azp=CLIENT)
    assert identity(config, sign(key, ok)).audience == CLIENT
    bad = claims_for(issuer.url, aud=[CLIENT, "api"], azp="intruder")
    assert_refused(refusal(config, sign(key, bad)), "IDPRejectedClaim", 403, "azp")
    single = claims_for(issuer.url, azp="intruder")
    assert identity(config, sign(key, single)).audience == CLIENT


def test_exp_is_required_and_an_integer(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    for bad in (None, NOW + 3600.5, str(int(NOW) + 3600), True):
        error = refusal(config, sign(key, claims_for(issuer.url, exp=bad)))
        assert_refused(error, "InvalidIdentityToken", 400, "exp claim")


def test_expired_token_answers_like_aws(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    exp = int(NOW) - 301
    error = refusal(config, sign(key, claims_for(issuer.url, iat=exp - 600, exp=exp)))
    assert_refused(error, "ExpiredTokenException", 400)
    assert error.message == (
        f"Token expired: current date/time {int(NOW)} must be before the expiration date/time {exp}"
    )
    within_skew = claims_for(issuer.url, iat=exp - 599, exp=exp + 2)
    assert identity(config, sign(key, within_skew)).expires_at == exp + 2


def test_iat_and_nbf_may_not_be_in_the_future_beyond_skew(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    late = int(NOW) + 301
    for extra in ({"iat": late, "exp": late + 600}, {"nbf": late}):
        error = refusal(config, sign(key, claims_for(issuer.url, **extra)))
        assert_refused(error, "InvalidIdentityToken", 400, "now 1900000000)")
    for extra in ({"iat": None}, {"iat": float(NOW)}, {"nbf": "soon"}):
        error = refusal(config, sign(key, claims_for(issuer.url, **extra)))
        assert_refused(error, "InvalidIdentityToken", 400, "integer")
    early = int(NOW) + 299
    ok = claims_for(issuer.url, iat=early, nbf=early, exp=early + 60)
    assert identity(config, sign(key, ok)).subject == "user-1"


def test_lifetime_and_age_are_bounded(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(
        {"url": issuer.url, "client_ids": [CLIENT], "max_token_age": 600},
        oidc={"max_token_lifetime_seconds": 7200},
    )
    long = claims_for(issuer.url, exp=int(NOW) + 7201)
    assert_refused(refusal(config, sign(key, long)), "InvalidIdentityToken", 400, "lifetime")
    backwards = claims_for(issuer.url, iat=int(NOW) + 200, exp=int(NOW) + 100)
    assert_refused(refusal(config, sign(key, backwards)), "InvalidIdentityToken", 400, "-100 s")
    old = claims_for(issuer.url, iat=int(NOW) - 601, exp=int(NOW) + 60)
    error = refusal(config, sign(key, old))
    assert_refused(error, "ExpiredTokenException", 400, "Token too old")


def test_sub_is_a_string_of_1_to_255(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    for sub in (None, "", "x" * 256, 42):
        error = refusal(config, sign(key, claims_for(issuer.url, sub=sub)))
        assert_refused(error, "InvalidIdentityToken", 400, "sub claim")
    assert identity(config, sign(key, claims_for(issuer.url, sub="x" * 255))).subject


def test_session_tags_and_source_identity_claims(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    tags = {"principal_tags": {"team": ["blue"], "cc": ["42"]}, "transitive_tag_keys": ["team"]}
    claims = claims_for(
        issuer.url,
        **{
            "https://aws.amazon.com/tags": tags,
            "https://aws.amazon.com/source_identity": "alice",
        },
    )
    result = identity(config, sign(key, claims))
    assert dict(result.session_tags) == {"team": "blue", "cc": "42"}
    assert result.transitive_tag_keys == ("team",)
    assert result.source_identity == "alice"
    assert not any("amazon.com" in name for name in result.context)
    for bad in (
        ["team"],
        {"principal_tags": {"team": "blue"}},
        {"principal_tags": {"team": ["a", "b"]}},
        {"principal_tags": {}, "transitive_tag_keys": [1]},
    ):
        token = sign(key, claims_for(issuer.url, **{"https://aws.amazon.com/tags": bad}))
        assert_refused(refusal(config, token), "IDPRejectedClaim", 403)
    token = sign(key, claims_for(issuer.url, **{"https://aws.amazon.com/source_identity": 1}))
    assert_refused(refusal(config, token), "IDPRejectedClaim", 403, "source_identity")


def test_token_size_limits(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(
        {"url": issuer.url, "client_ids": [CLIENT]}, oidc={"max_token_bytes": 1024}
    )
    big = sign(key, claims_for(issuer.url, pad="x" * 800))
    assert_refused(refusal(config, big), "ValidationError", 400, "between 4 and 1024")
    assert_refused(refusal(config, "a.b"), "ValidationError", 400, "(got 3)")


# --------------------------------------------------------------------------- conventions


def test_google_rules_apply_to_a_google_kind_issuer() -> None:
    google = Issuer("/google").start()
    try:
        key = google.add_rsa("g1")
        config = make_config(
            {"url": google.url, "client_ids": ["web", "android"], "kind": "google"}
        )
        bare = google.url.removeprefix("http://")
        claims = claims_for(
            bare,
            aud="web",
            azp="android",
            email="a@corp.example",
            email_verified=True,
            hd="corp.example",
            name="Alice",
        )
        result = identity(config, sign(key, claims, kid="g1"))
        assert result.issuer == bare
        assert result.principal_names == (
            f"arn:aws:iam::{ACCOUNT}:oidc-provider/{bare}",
            "accounts.google.com",
        )
        assert result.audience == "android"
        assert dict(result.context) == {
            "accounts.google.com:aud": "android",
            "accounts.google.com:oaud": "web",
            "accounts.google.com:sub": "user-1",
            "accounts.google.com:email": "a@corp.example",
            "accounts.google.com:hd": "corp.example",
        }
        unverified = claims_for(
            google.url, aud="web", email="a@corp.example", email_verified="true"
        )
        context = identity(config, sign(key, unverified, kid="g1")).context
        assert "accounts.google.com:email" not in context
        assert context["accounts.google.com:aud"] == "web"
    finally:
        google.stop()


def test_cognito_user_pool_accepts_only_id_tokens(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT], "kind": "cognito-user-pool"})
    claims = claims_for(issuer.url, token_use="id", **{"cognito:groups": ["admins", "dev"]})
    result = identity(config, sign(key, claims))
    path = issuer.url.removeprefix("http://")
    assert result.context[f"{path}:cognito:groups"] == ("admins", "dev")
    for token_use in ("access", None):
        error = refusal(config, sign(key, claims_for(issuer.url, token_use=token_use)))
        assert_refused(error, "IDPRejectedClaim", 403, "token_use")


def test_cognito_identity_needs_amr_and_uses_aws_keys(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    pool = "us-east-1:0f0e0d0c-0000-4000-8000-000000000000"
    config = make_config({"url": issuer.url, "client_ids": [pool], "kind": "cognito-identity"})
    amr = ["authenticated", "accounts.google.com", "accounts.google.com:123"]
    result = identity(config, sign(key, claims_for(issuer.url, aud=pool, amr=amr)))
    assert result.principal_names[1] == "cognito-identity.amazonaws.com"
    assert dict(result.context) == {
        "cognito-identity.amazonaws.com:aud": pool,
        "cognito-identity.amazonaws.com:sub": "user-1",
        "cognito-identity.amazonaws.com:amr": tuple(amr),
    }
    for bad in (None, "authenticated", ["pwd"], []):
        error = refusal(config, sign(key, claims_for(issuer.url, aud=pool, amr=bad)))
        assert_refused(error, "IDPRejectedClaim", 403, "amr")


def test_github_actions_claims_become_condition_keys(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config(
        {"url": issuer.url, "client_ids": ["sts.amazonaws.com"], "kind": "github-actions"}
    )
    claims = claims_for(
        issuer.url,
        aud="sts.amazonaws.com",
        sub="repo:octo-org/app:ref:refs/heads/main",
        repository="octo-org/app",
        repository_owner="octo-org",
        ref="refs/heads/main",
        job_workflow_ref="octo-org/app/.github/workflows/deploy.yml@refs/heads/main",
        environment="prod",
        actor="octocat",
        run_attempt="1",
    )
    context = identity(config, sign(key, claims)).context
    path = issuer.url.removeprefix("http://")
    assert context[f"{path}:sub"] == "repo:octo-org/app:ref:refs/heads/main"
    assert context[f"{path}:aud"] == "sts.amazonaws.com"
    for name in ("repository", "repository_owner", "ref", "job_workflow_ref", "environment"):
        assert context[f"{path}:{name}"] == claims[name]
    spoofed = dict(claims, repository="evil-org/app")
    assert_refused(refusal(config, sign(key, spoofed)), "IDPRejectedClaim", 403, "repository")


def test_provider_kind_is_inferred_from_the_url() -> None:
    assert infer_oidc_kind("https://accounts.google.com") == "google"
    assert infer_oidc_kind("https://cognito-identity.amazonaws.com") == "cognito-identity"
    pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert infer_oidc_kind(pool) == "cognito-user-pool"
    assert infer_oidc_kind("https://token.actions.githubusercontent.com") == "github-actions"
    assert infer_oidc_kind("https://idp.example.com/realms/x") == "generic"
    assert infer_oidc_kind("https://accounts.google.com.evil.example") == "generic"
    provider = OidcProviderConfig.model_validate(
        {"url": "http://127.0.0.1:1/google", "client_ids": ["a"], "kind": "google"}
    )
    assert (provider.provider_kind, provider.arn_path) == ("google", "127.0.0.1:1/google")


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"Email": "a@example.com", "email": "b@example.com"}, ("'Email'", "'email'")),
        ({"SUB": "admin"}, ("'SUB'", "'sub'")),
        ({"AUD": "other-client"}, ("'AUD'", "'aud'")),
    ],
)
def test_claims_that_differ_only_in_case_are_refused(
    issuer: Issuer, extra: dict[str, str], names: tuple[str, str]
) -> None:
    """One case-insensitive condition key with two values: refused, never a 500 or a guess."""
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    error = refusal(config, sign(key, claims_for(issuer.url, **extra)))
    assert_refused(error, "IDPRejectedClaim", 403, "differ only in case")
    assert all(name in error.message for name in names), error.message


def test_mixed_case_claim_names_without_a_twin_are_exposed(issuer: Issuer) -> None:
    key = issuer.add_rsa("k1")
    config = make_config({"url": issuer.url, "client_ids": [CLIENT]})
    result = identity(config, sign(key, claims_for(issuer.url, Department="ops", c_hash="x")))
    path = issuer.url.split("://", 1)[1]
    assert result.context[f"{path}:Department"] == "ops"
    assert result.context[f"{path}:c_hash"] == "x"
