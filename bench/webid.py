"""AssumeRoleWithWebIdentity bench inputs: an offline OIDC issuer, its tokens, its config.

The web identity workload needs an issuer the broker trusts without any network: an RSA-2048
key made here, its public JWK written to a JWKS file that the provider's ``jwks_file``
points at (so the broker never fetches keys and the bench measures verification, not an
issuer), and RS256 ID tokens minted with joserfc before the timed window. The provider is
not ``single_use`` (as with AWS, a client reuses its token until it expires), so a pool of
tokens can be replayed just like the pre-signed SigV4 pool of the other workloads.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from joserfc import jwt
from joserfc.jwk import RSAKey

ACCOUNT = "111111111111"
ISSUER = "https://bench-idp.example.com"
CLIENT_ID = "bench-client"
KID = "bench-key-1"
ROLE_NAME = "WebBench"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/bench-idp.example.com"
SESSION_NAME = "bench"
TOKEN_LIFETIME_S = 3600
EXPECT = b"<SubjectFromWebIdentityToken>bench-user-"
"""What every web identity answer (and the bare-form copy of one) must contain."""


@dataclass
class Issuer:
    """A bench OIDC issuer: one RSA-2048 signing key, published as a one-key JWKS."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))

    def jwks(self) -> dict[str, Any]:
        """The public half only, with the ``kid`` tokens name, as an issuer publishes it."""
        public = dict(self.key.as_dict(private=False))
        public.update({"kid": KID, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks(), indent=2) + "\n")
        return path

    def token(self, subject: str, *, now: float | None = None, iss: str = ISSUER) -> str:
        """An RS256 ID token with exactly the claims the issue names: iss/sub/aud/iat/exp."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": iss,
            "sub": subject,
            "aud": CLIENT_ID,
            "iat": issued,
            "exp": issued + TOKEN_LIFETIME_S,
        }
        return jwt.encode({"alg": "RS256", "kid": KID, "typ": "JWT"}, claims, self.key)

    def tokens(self, count: int, *, iss: str = ISSUER, first: int = 0) -> list[str]:
        """``count`` distinct tokens (distinct fixed-width ``sub``), minted before timing.

        Fixed width so every answer, which echoes ``sub``, has the same size as the
        bare-form baseline's fixed body.
        """
        now = time.time()
        return [
            self.token(f"bench-user-{i:05d}", now=now, iss=iss) for i in range(first, first + count)
        ]


def add_web_identity(data: dict[str, Any], jwks_path: Path) -> dict[str, Any]:
    """A copy of a parsed config with the bench provider and the ``WebBench`` role added.

    The trust policy is the shape AWS documents for OIDC federation: the provider ARN as
    ``Federated`` principal and ``StringEquals HOST:aud = client``, so the bench pays for
    the condition evaluation a real deployment pays for.
    """
    variant = copy.deepcopy(data)
    account = variant["accounts"][ACCOUNT]
    account.setdefault("oidc_providers", []).append(
        {"url": ISSUER, "client_ids": [CLIENT_ID], "jwks_file": str(jwks_path.resolve())}
    )
    account.setdefault("roles", {})[ROLE_NAME] = {
        "description": "AssumeRoleWithWebIdentity bench role.",
        "trust_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": PROVIDER_ARN},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {"bench-idp.example.com:aud": CLIENT_ID}},
                }
            ],
        },
        "managed_policies": ["ReadOnlyAccess"],
    }
    return variant


def write_config(demo: Path, folder: Path, issuer: Issuer) -> Path:
    """config/demo.yaml plus the bench provider, written to ``folder`` for a server process.

    No ``token_keys`` (the served broker seals with an ephemeral key, like the demo rows),
    so the server process needs no environment.
    """
    jwks = issuer.write_jwks(folder / "bench-jwks.json")
    data = add_web_identity(yaml.safe_load(demo.read_text()), jwks)
    path = folder / "demo-webid.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def request_body(token: str, *, role: str = ROLE_NAME) -> str:
    """The unsigned form body an AWS SDK posts for AssumeRoleWithWebIdentity."""
    params = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
        "RoleSessionName": SESSION_NAME,
        "WebIdentityToken": token,
    }
    # botocore's encoding (RFC 3986 unreserved kept), as micro.form does.
    return urlencode(params, quote_via=quote, safe="-_.~")
