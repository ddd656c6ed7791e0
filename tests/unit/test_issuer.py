"""The broker as an OIDC issuer: keys and rotation, discovery + JWKS, GetWebIdentityToken JWTs.

The proof that matters is broker-to-broker: a token minted here is verified by
:class:`broker.identity.WebIdentityVerifier` (a second broker's config listing this broker as
an ``oidc_providers`` entry) fetching discovery and the JWKS from a real loopback server
that serves :func:`broker.issuer.routes`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette

from broker.clock import FrozenClock
from broker.config import BrokerConfig, ConfigError, load_config
from broker.directory import Directory
from broker.errors import StsError
from broker.identity import Caller, SessionClaims, WebIdentity, WebIdentityVerifier
from broker.issuer import CLAIM_NAMESPACE, IssuerKeys, WebIdentityIssuer, routes
from broker.issuer.tokens import MAX_PAYLOAD_BYTES

DEV = "111111111111"
OFF = "222222222222"
RELYING = "333333333333"
AUDIENCE = "https://api.example.com"
NOW = 1_900_000_000.0
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "sts:AssumeRole"}],
}

# --------------------------------------------------------------------------- helpers


def issuer_config(public_url: str, **issuer: Any) -> BrokerConfig:
    """DEV has opted in (user alice, role Dev); OFF has not (user carol)."""
    data: dict[str, Any] = {
        "public_url": public_url,
        "region": "eu-west-1",
        "accounts": {
            DEV: {
                "outbound_web_identity_federation": True,
                "users": {"alice": {"tags": {"team": "platform"}}},
                "roles": {"Dev": {"trust_policy": TRUST, "tags": {"tier": "dev"}}},
            },
            OFF: {"users": {"carol": {}}},
        },
    }
    if issuer:
        data["issuer"] = issuer
    return BrokerConfig.model_validate(data)


def relying_config(issuer_url: str, client_ids: list[str]) -> BrokerConfig:
    """A second broker whose account RELYING trusts the first broker as an OIDC provider."""
    return BrokerConfig.model_validate(
        {
            "public_url": "http://127.0.0.1:9",
            "accounts": {
                RELYING: {"oidc_providers": [{"url": issuer_url, "client_ids": client_ids}]}
            },
        }
    )


def user_caller(config: BrokerConfig, account: str = DEV, name: str = "alice") -> Caller:
    user = Directory.build(config).users[f"arn:aws:iam::{account}:user/{name}"]
    return Caller(
        kind="user",
        account=account,
        arn=user.arn,
        user_id=user.user_id,
        principal_arn=user.arn,
        user=user,
    )


def role_caller(
    config: BrokerConfig,
    *,
    expires_at: int = int(NOW) + 3600,
    tags: dict[str, str] | None = None,
    source_identity: str | None = None,
) -> Caller:
    role = Directory.build(config).roles[f"arn:aws:iam::{DEV}:role/Dev"]
    arn = f"arn:aws:sts::{DEV}:assumed-role/Dev/build-7"
    claims = SessionClaims(
        access_key_id="ASIAEXAMPLEEXAMPLE00",
        account=DEV,
        kind="assumed-role",
        arn=arn,
        user_id=f"{role.role_id}:build-7",
        principal_name="Dev",
        principal_path="/",
        issued_at=int(NOW) - 60,
        expires_at=expires_at,
        tags=tags or {},
        source_identity=source_identity,
    )
    return Caller(
        kind="assumed-role",
        account=DEV,
        arn=arn,
        user_id=claims.user_id,
        principal_arn=role.arn,
        role=role,
        claims=claims,
    )


def mint(issuer: WebIdentityIssuer, caller: Caller, **overrides: Any) -> tuple[str, int]:
    args: dict[str, Any] = {
        "audience": [AUDIENCE],
        "duration": None,
        "algorithm": "RS256",
        "tags": {},
        "subject_mode": None,
        "scope": None,
    }
    args.update(overrides)
    return issuer.mint(caller, **args)


def refusal(issuer: WebIdentityIssuer, caller: Caller, **overrides: Any) -> StsError:
    with pytest.raises(StsError) as caught:
        mint(issuer, caller, **overrides)
    return caught.value


def decode(segment: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


class LoopbackIssuer:
    """The first broker's issuer routes, served by uvicorn on 127.0.0.1 in a thread."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.clock = FrozenClock(NOW)
        self.config = issuer_config(self.url)
        self.issuer = WebIdentityIssuer(self.config, self.clock)
        app = Starlette(routes=routes(self.issuer))
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> LoopbackIssuer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def verify(
        self, token: str, client_ids: list[str] | None = None, *, at: float = NOW
    ) -> WebIdentity | StsError:
        """What a second broker trusting this one makes of ``token``."""

        async def run() -> WebIdentity | StsError:
            verifier = WebIdentityVerifier(
                relying_config(self.url, client_ids or [AUDIENCE]), FrozenClock(at)
            )
            try:
                return await verifier.verify(token, account=RELYING)
            except StsError as exc:
                return exc
            finally:
                await verifier.aclose()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def served() -> Iterator[LoopbackIssuer]:
    running = LoopbackIssuer().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def offline() -> WebIdentityIssuer:
    """An issuer with ephemeral keys, for refusals (no server needed)."""
    return WebIdentityIssuer(issuer_config("https://sts.example.com"), FrozenClock(NOW))


def write_pem(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


_RSA: list[rsa.RSAPrivateKey] = []


def rsa_keys(count: int) -> list[rsa.RSAPrivateKey]:
    """RSA-2048 keys, made once per test session (each takes ~50 ms)."""
    while len(_RSA) < count:
        _RSA.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA[:count]


def load_yaml(tmp_path: Path, issuer_block: str) -> BrokerConfig:
    path = tmp_path / "broker.yaml"
    path.write_text(
        "public_url: https://sts.example.com\n"
        f"issuer:\n{issuer_block}"
        f'accounts:\n  "{DEV}":\n    outbound_web_identity_federation: true\n'
    )
    return load_config(path)


def config_problem(tmp_path: Path, issuer_block: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path, issuer_block)
    assert len(caught.value.problems) == 1, str(caught.value)
    return str(caught.value.problems[0])


# --------------------------------------------------------------------------- broker to broker


@pytest.mark.parametrize("algorithm", ["RS256", "ES384"])
def test_a_second_broker_verifies_the_token_through_discovery_and_jwks(
    served: LoopbackIssuer, algorithm: str
) -> None:
    caller = role_caller(served.config, tags={"project": "apollo"}, source_identity="alice")
    token, expires_at = mint(
        served.issuer, caller, algorithm=algorithm, duration=900, tags={"job": "nightly-7"}
    )
    identity = served.verify(token)
    assert isinstance(identity, WebIdentity), identity
    role_arn = f"arn:aws:iam::{DEV}:role/Dev"
    assert identity.issuer == served.url
    assert identity.subject == role_arn
    assert identity.audience == AUDIENCE
    assert identity.expires_at == expires_at == int(NOW) + 900
    header, claims = parts(token)
    kids = {key["kid"]: key["alg"] for key in served.issuer.jwks()["keys"]}
    assert header["alg"] == algorithm and header["typ"] == "JWT"
    assert kids[header["kid"]] == algorithm
    assert claims["iat"] == claims["nbf"] == int(NOW)
    assert claims["aud"] == AUDIENCE
    assert claims[CLAIM_NAMESPACE] == {
        "aws_account": DEV,
        "source_region": "eu-west-1",
        "principal_id": role_arn,
        "principal_tags": {"tier": "dev", "project": "apollo"},
        "request_tags": {"job": "nightly-7"},
        "source_identity": "alice",
    }


def test_several_audiences_become_a_list_and_each_relying_party_matches_its_own(
    served: LoopbackIssuer,
) -> None:
    caller = user_caller(served.config)
    token, _ = mint(served.issuer, caller, audience=["svc-a", "svc-b"])
    assert parts(token)[1]["aud"] == ["svc-a", "svc-b"]
    assert parts(token)[1]["sub"] == f"arn:aws:iam::{DEV}:user/alice"
    identity = served.verify(token, ["svc-b"])
    assert isinstance(identity, WebIdentity) and identity.audience == "svc-b"
    refused = served.verify(token, ["svc-c"])
    assert isinstance(refused, StsError)
    assert (refused.code, refused.status) == ("IDPRejectedClaim", 403)


def test_a_tampered_token_is_refused_by_the_relying_broker(served: LoopbackIssuer) -> None:
    token, _ = mint(served.issuer, user_caller(served.config))
    header, payload, signature = token.split(".")
    claims = decode(payload)
    claims["sub"] = f"arn:aws:iam::{DEV}:role/Admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    refused = served.verify(f"{header}.{forged_payload}.{signature}")
    assert isinstance(refused, StsError)
    assert (refused.code, refused.status) == ("InvalidIdentityToken", 400)
    assert "signature" in refused.message


def test_a_token_signed_by_another_issuer_with_the_same_url_and_kid_is_refused(
    served: LoopbackIssuer,
) -> None:
    """Someone else's keys (same iss, same kid) must not pass: kid is only a lookup key."""
    impostor = WebIdentityIssuer(served.config, served.clock)
    genuine_kid = parts(mint(served.issuer, user_caller(served.config))[0])[0]["kid"]
    forged, _ = mint(impostor, user_caller(served.config))
    header, payload, signature = forged.split(".")
    forged_header = decode(header) | {"kid": genuine_kid}
    encoded = base64.urlsafe_b64encode(json.dumps(forged_header).encode()).rstrip(b"=").decode()
    refused = served.verify(f"{encoded}.{payload}.{signature}")
    assert isinstance(refused, StsError)
    assert (refused.code, refused.status) == ("InvalidIdentityToken", 400)


def test_the_token_expires_for_the_relying_broker_at_exp(served: LoopbackIssuer) -> None:
    token, expires_at = mint(served.issuer, user_caller(served.config), duration=60)
    assert isinstance(served.verify(token, at=expires_at - 1), WebIdentity)
    late = served.verify(token, at=expires_at + 301)  # beyond the default 300 s skew
    assert isinstance(late, StsError)
    assert (late.code, late.status) == ("ExpiredTokenException", 400)


def test_discovery_and_jwks_are_served_with_cache_control(served: LoopbackIssuer) -> None:
    with httpx.Client(base_url=served.url) as client:
        discovery = client.get("/.well-known/openid-configuration")
        jwks = client.get("/.well-known/jwks.json")
        posted = client.post("/.well-known/jwks.json")
    for response in (discovery, jwks):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=600"
        assert response.headers["content-type"] == "application/json"
    assert posted.status_code == 405
    document = discovery.json()
    assert document["issuer"] == served.url
    assert document["jwks_uri"] == served.url + "/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["RS256", "ES384"]
    keys = jwks.json()["keys"]
    assert sorted((key["kty"], key["alg"], key["use"]) for key in keys) == [
        ("EC", "ES384", "sig"),
        ("RSA", "RS256", "sig"),
    ]
    private_members = {"d", "p", "q", "dp", "dq", "qi"}
    assert all(not (private_members & key.keys()) for key in keys)


# --------------------------------------------------------------------------- refusals


def test_an_account_that_has_not_opted_in_is_refused(offline: WebIdentityIssuer) -> None:
    config = issuer_config("https://sts.example.com")
    error = refusal(offline, user_caller(config, OFF, "carol"))
    assert (error.code, error.status) == ("OutboundWebIdentityFederationDisabledException", 403)


def test_the_flag_is_off_by_default_and_on_in_the_demo_config() -> None:
    config = issuer_config("https://sts.example.com")
    assert config.accounts[OFF].outbound_web_identity_federation is False
    demo = load_config(Path(__file__).parents[2] / "config" / "demo.yaml")
    assert demo.accounts[DEV].outbound_web_identity_federation is True


def test_a_token_may_not_outlive_the_calling_session(offline: WebIdentityIssuer) -> None:
    config = issuer_config("https://sts.example.com")
    caller = role_caller(config, expires_at=int(NOW) + 200)
    error = refusal(offline, caller)  # default 300 s
    assert (error.code, error.status) == ("SessionDurationEscalationException", 403)
    error = refusal(offline, caller, duration=201)
    assert (error.code, error.status) == ("SessionDurationEscalationException", 403)
    _, expires_at = mint(offline, caller, duration=200)
    assert expires_at == int(NOW) + 200


def test_long_term_credentials_have_no_session_to_escalate(offline: WebIdentityIssuer) -> None:
    config = issuer_config("https://sts.example.com")
    _, expires_at = mint(offline, user_caller(config), duration=3600)
    assert expires_at == int(NOW) + 3600


def test_an_oversized_payload_is_refused(offline: WebIdentityIssuer) -> None:
    config = issuer_config("https://sts.example.com")
    tags = {f"k{i:02d}" + "x" * 125: "v" * 256 for i in range(50)}
    error = refusal(offline, user_caller(config), tags=tags)
    assert (error.code, error.status) == ("JWTPayloadSizeExceededException", 400)
    assert str(MAX_PAYLOAD_BYTES) in error.message
    # Just under the limit still mints, and the token fits a web identity token (20000).
    token, _ = mint(offline, user_caller(config), tags=dict(list(tags.items())[:28]))
    assert len(parts(token)[1][CLAIM_NAMESPACE]["request_tags"]) == 28 and len(token) < 20000


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"algorithm": "HS256"}, "not supported; use RS256 or ES384"),
        ({"algorithm": "ES256"}, "not supported; use RS256 or ES384"),
        ({"algorithm": "none"}, "Member must have length of 5"),
        ({"algorithm": "RS2566"}, "Member must have length of 5"),
        ({"duration": 59}, "between 60 and 3600"),
        ({"duration": 3601}, "between 60 and 3600"),
        ({"audience": []}, "between 1 and 10"),
        ({"audience": [f"a{i}" for i in range(11)]}, "between 1 and 10"),
        ({"audience": ["x" * 1001]}, "between 1 and 1000"),
        ({"audience": ["a", "a"]}, "same value more than once"),
        ({"subject_mode": "Everyone"}, "enum value set: [AWSIdentity, OriginIdentity]"),
        ({"subject_mode": "OriginIdentity"}, "aws:OriginIdentity/Subject"),
        ({"scope": "read write"}, "only when SubjectMode is OriginIdentity"),
        ({"scope": "read  write"}, "space-separated scope values"),
        ({"scope": 'say"hi'}, "space-separated scope values"),
        ({"tags": {"aws:team": "x"}}, "may not start with 'aws:'"),
        ({"tags": {"Team": "a", "team": "b"}}, "Tag keys are case insensitive"),
        ({"tags": {"team<script>": "a"}}, "Member must satisfy regular expression pattern"),
        ({"tags": {"team": "a\nb"}}, "The value of tag 'team' failed to satisfy constraint"),
        ({"tags": {"k" * 129: "a"}}, "Member must have length between 1 and 128"),
        ({"tags": {"team": "v" * 257}}, "length less than or equal to 256"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "less than or equal to 50"),
    ],
)
def test_invalid_parameters_are_validation_errors(
    offline: WebIdentityIssuer, overrides: dict[str, Any], fragment: str
) -> None:
    config = issuer_config("https://sts.example.com")
    error = refusal(offline, user_caller(config), **overrides)
    assert (error.code, error.status) == ("ValidationError", 400)
    assert fragment in error.message


def test_validation_comes_before_the_account_check(offline: WebIdentityIssuer) -> None:
    """The model is checked first, as AWS does: a malformed call learns nothing else."""
    config = issuer_config("https://sts.example.com")
    error = refusal(offline, user_caller(config, OFF, "carol"), algorithm="HS256")
    assert error.code == "ValidationError"


def test_each_token_has_a_fresh_jti(offline: WebIdentityIssuer) -> None:
    caller = user_caller(issuer_config("https://sts.example.com"))
    first, second = mint(offline, caller)[0], mint(offline, caller)[0]
    assert parts(first)[1]["jti"] != parts(second)[1]["jti"]


# --------------------------------------------------------------------------- keys and rotation


def test_without_configured_keys_ephemeral_keys_are_made_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="broker.issuer"):
        keys = IssuerKeys.from_settings(issuer_config("https://sts.example.com").issuer)
    assert keys.ephemeral
    assert "issuer.keys is not configured" in caplog.text
    assert [key.algorithm for key in keys.published] == ["RS256", "ES384"]
    assert "key=" not in repr(keys.published[0])  # the private key stays out of repr/logs


def test_rotation_publishes_next_and_previous_but_signs_with_current(tmp_path: Path) -> None:
    old, new, upcoming = rsa_keys(3)
    write_pem(tmp_path / "old.pem", old)
    write_pem(tmp_path / "new.pem", new)
    write_pem(tmp_path / "upcoming.pem", upcoming)
    write_pem(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP384R1()))
    before = load_yaml(
        tmp_path,
        "  keys:\n"
        "    - {id: rs-old, algorithm: RS256, private_key_file: old.pem}\n"
        "    - {id: rs-new, algorithm: RS256, private_key_file: new.pem, status: next}\n"
        "    - {id: ec-1, algorithm: ES384, private_key_file: ec.pem}\n",
    )
    after = load_yaml(
        tmp_path,
        "  jwks_max_age_seconds: 120\n"
        "  keys:\n"
        "    - {id: rs-new, algorithm: RS256, private_key_file: new.pem}\n"
        "    - {id: rs-old, algorithm: RS256, private_key_file: old.pem, status: previous}\n"
        "    - {id: rs-next, algorithm: RS256, private_key_file: upcoming.pem, status: next}\n"
        "    - {id: ec-1, algorithm: ES384, private_key_file: ec.pem}\n",
    )
    clock = FrozenClock(NOW)
    issuer_before = WebIdentityIssuer(before, clock)
    issuer_after = WebIdentityIssuer(after, clock)
    assert [key["kid"] for key in issuer_before.jwks()["keys"]] == ["rs-old", "ec-1", "rs-new"]
    assert [key["kid"] for key in issuer_after.jwks()["keys"]] == [
        "rs-new",
        "ec-1",
        "rs-next",
        "rs-old",
    ]
    assert issuer_after.jwks_max_age == 120
    caller = user_caller(issuer_config("https://sts.example.com"))
    token_before, _ = mint(issuer_before, caller)
    token_after, _ = mint(issuer_after, caller)
    assert parts(token_before)[0]["kid"] == "rs-old"
    assert parts(token_after)[0]["kid"] == "rs-new"
    assert parts(mint(issuer_after, caller, algorithm="ES384")[0])[0]["kid"] == "ec-1"
    # Before the swap, verifiers already held rs-new; after it, they still hold rs-old.
    published_before = {key["kid"]: key for key in issuer_before.jwks()["keys"]}
    published_after = {key["kid"]: key for key in issuer_after.jwks()["keys"]}
    assert published_before["rs-new"] == published_after["rs-new"]
    assert published_before["rs-old"] == published_after["rs-old"]


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        (
            "  keys:\n    - {id: r, algorithm: RS256, private_key_file: rsa.pem}\n",
            "needs exactly one ES384 key with status current (found 0)",
        ),
        (
            "  keys:\n"
            "    - {id: r, algorithm: RS256, private_key_file: rsa.pem}\n"
            "    - {id: r2, algorithm: RS256, private_key_file: rsa.pem}\n"
            "    - {id: e, algorithm: ES384, private_key_file: p384.pem}\n",
            "needs exactly one RS256 key with status current (found 2)",
        ),
        (
            "  keys:\n"
            "    - {id: k, algorithm: RS256, private_key_file: rsa.pem}\n"
            "    - {id: k, algorithm: ES384, private_key_file: p384.pem}\n",
            "key ID 'k' is used twice",
        ),
        (
            "  keys:\n    - {id: r, algorithm: RS256, private_key_file: p384.pem}\n",
            "RS256 needs an RSA private key",
        ),
        (
            "  keys:\n    - {id: e, algorithm: ES384, private_key_file: p256.pem}\n",
            "ES384 needs an EC private key on the P-384 curve",
        ),
        (
            "  keys:\n    - {id: r, algorithm: RS256, private_key_file: weak.pem}\n",
            "RS256 keys must have 2048 to 8192 bits (this one has 1024)",
        ),
        (
            "  keys:\n    - {id: r, algorithm: RS256, private_key_file: locked.pem}\n",
            "the PEM private key is encrypted",
        ),
        (
            "  keys:\n    - {id: r, algorithm: RS256, private_key_file: public.pem}\n",
            "not a PEM private key",
        ),
        (
            "  keys:\n    - {id: r, algorithm: RS256, private_key_file: missing.pem}\n",
            "cannot read the key file",
        ),
        (
            "  keys:\n    - {id: r, algorithm: HS256, private_key_file: rsa.pem}\n",
            "must be one of 'RS256' or 'ES384'",
        ),
        (
            "  jwks_max_age_seconds: 5\n",
            "issuer.jwks_max_age_seconds: must be between 60 and 86400 (got 5)",
        ),
    ],
)
def test_bad_issuer_keys_stop_start_up_with_the_line(
    tmp_path: Path, block: str, fragment: str
) -> None:
    (strong,) = rsa_keys(1)
    write_pem(tmp_path / "rsa.pem", strong)
    write_pem(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    write_pem(tmp_path / "p256.pem", ec.generate_private_key(ec.SECP256R1()))
    write_pem(tmp_path / "weak.pem", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    (tmp_path / "locked.pem").write_bytes(
        strong.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    (tmp_path / "public.pem").write_bytes(
        strong.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    problem = config_problem(tmp_path, block)
    assert problem.startswith(f"{tmp_path / 'broker.yaml'}:")
    assert fragment in problem
    key_lines = {
        line
        for name in ("rsa.pem", "locked.pem", "public.pem")
        for line in (tmp_path / name).read_text().splitlines()[1:-1]
    }
    assert not any(line in problem for line in key_lines) and "passphrase" not in problem


def test_a_key_file_broken_after_loading_is_refused_at_start_up(tmp_path: Path) -> None:
    (strong,) = rsa_keys(1)
    write_pem(tmp_path / "rsa.pem", strong)
    write_pem(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    config = load_yaml(
        tmp_path,
        "  keys:\n"
        "    - {id: r, algorithm: RS256, private_key_file: rsa.pem}\n"
        "    - {id: e, algorithm: ES384, private_key_file: p384.pem}\n",
    )
    write_pem(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match=r"issuer key e: .*P-384"):
        IssuerKeys.from_settings(config.issuer)
