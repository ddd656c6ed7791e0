"""Tokens shaped like the ones real identity providers issue.

A relying party's provider-specific rules (Google ``azp``/``hd``, Cognito ``token_use``
and ``amr``, GitHub's ``sub`` grammar) can only be tested against tokens that look like
the real thing. Each preset signs with the given provider, so ``iss`` is always that
provider's issuer (a test issuer at ``http://127.0.0.1:PORT/google`` plays Google);
extra ``**claims`` override or (with ``None``) remove claims, as in
:meth:`OidcProvider.claims`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from idp_fixtures.oidc.provider import OidcProvider

AWS_TAGS_CLAIM = "https://aws.amazon.com/tags"
"""The claim AWS reads session tags from in web identity tokens."""


def aws_tags(
    principal_tags: Mapping[str, str], transitive_tag_keys: Sequence[str] = ()
) -> dict[str, Any]:
    """``{AWS_TAGS_CLAIM: {...}}`` ready to splat into a token: ``**aws_tags({...})``.

    AWS wants each tag value as a one-element list, and ``transitive_tag_keys`` only when
    there are some.
    """
    shape: dict[str, Any] = {"principal_tags": {k: [v] for k, v in principal_tags.items()}}
    if transitive_tag_keys:
        shape["transitive_tag_keys"] = list(transitive_tag_keys)
    return {AWS_TAGS_CLAIM: shape}


def google(
    provider: OidcProvider,
    sub: str = "110169484474386276334",
    *,
    email: str = "alice@example.com",
    email_verified: bool = True,
    hd: str | None = None,
    aud: str | None = None,
    azp: str | None = None,
    lifetime: int = 3600,
    **claims: Any,
) -> str:
    """A Google ID token: numeric ``sub``, ``azp`` (defaults to ``aud``), ``email``,
    ``email_verified``, and ``hd`` only for Workspace accounts (when given).
    """
    audience = aud or provider.default_client.client_id
    body: dict[str, Any] = {
        "azp": azp or audience,
        "email": email,
        "email_verified": email_verified,
    }
    if hd is not None:
        body["hd"] = hd
    body.update(claims)
    return provider.id_token(sub, aud=audience, lifetime=lifetime, **body)


def cognito_user_pool(
    provider: OidcProvider,
    sub: str | None = None,
    *,
    username: str = "alice",
    email: str | None = "alice@example.com",
    groups: Sequence[str] = (),
    roles: Sequence[str] = (),
    preferred_role: str | None = None,
    aud: str | None = None,
    lifetime: int = 3600,
    **claims: Any,
) -> str:
    """A Cognito user pool ID token: UUID ``sub``, ``token_use="id"``, ``cognito:username``,
    and ``cognito:groups`` / ``cognito:roles`` / ``cognito:preferred_role`` when set
    (Cognito omits them for users in no group). ``aud`` is the app client ID.
    """
    body: dict[str, Any] = {
        "token_use": "id",
        "cognito:username": username,
        "auth_time": provider.now(),
        "event_id": str(uuid.uuid4()),
        "origin_jti": str(uuid.uuid4()),
    }
    if email is not None:
        body["email"] = email
        body["email_verified"] = True
    if groups:
        body["cognito:groups"] = list(groups)
    if roles:
        body["cognito:roles"] = list(roles)
    if preferred_role is not None:
        body["cognito:preferred_role"] = preferred_role
    body.update(claims)
    return provider.id_token(sub or str(uuid.uuid4()), aud=aud, lifetime=lifetime, **body)


def cognito_identity(
    provider: OidcProvider,
    identity_id: str | None = None,
    *,
    identity_pool_id: str = "us-east-1:11111111-2222-3333-4444-555555555555",
    authenticated: bool = True,
    login_providers: Sequence[str] = ("cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",),
    lifetime: int = 600,
    **claims: Any,
) -> str:
    """A Cognito Identity (``GetOpenIdToken``) token: ``sub`` is the identity ID,
    ``aud`` the identity pool ID, ``amr`` ``["authenticated", <provider host>,
    <provider>:...]`` (or ``["unauthenticated"]``). Lifetime defaults to Cognito's 10 min.
    """
    region = identity_pool_id.split(":", 1)[0]
    sub = identity_id or f"{region}:{uuid.uuid4()}"
    amr: list[str]
    if authenticated:
        amr = ["authenticated"]
        for login in login_providers:
            host = login.split("/", 1)[0]
            if host not in amr:
                amr.append(host)
            amr.append(f"{login}:CognitoSignIn:{uuid.uuid4()}")
    else:
        amr = ["unauthenticated"]
    body: dict[str, Any] = {"amr": amr}
    body.update(claims)
    return provider.id_token(sub, aud=identity_pool_id, lifetime=lifetime, **body)


def github_actions(
    provider: OidcProvider,
    *,
    repository: str = "octo-org/octo-repo",
    ref: str = "refs/heads/main",
    sha: str = "example0sha0000000000000000000000000000a",
    actor: str = "octocat",
    environment: str | None = None,
    event_name: str = "push",
    workflow_file: str = "ci.yml",
    runner_environment: str = "github-hosted",
    aud: str = "sts.amazonaws.com",
    lifetime: int = 300,
    **claims: Any,
) -> str:
    """A GitHub Actions OIDC token with GitHub's ``sub`` grammar:
    ``repo:ORG/REPO:environment:NAME`` when a job has an environment,
    ``repo:ORG/REPO:pull_request`` for pull requests, else ``repo:ORG/REPO:ref:REF``.
    ``aud`` defaults to ``sts.amazonaws.com`` as ``aws-actions/configure-aws-credentials``
    requests it; ``nbf`` is set in the past as GitHub does.
    """
    if environment is not None:
        sub = f"repo:{repository}:environment:{environment}"
    elif event_name == "pull_request":
        sub = f"repo:{repository}:pull_request"
    else:
        sub = f"repo:{repository}:ref:{ref}"
    owner = repository.split("/", 1)[0]
    workflow_ref = f"{repository}/.github/workflows/{workflow_file}@{ref}"
    body: dict[str, Any] = {
        "ref": ref,
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "sha": sha,
        "repository": repository,
        "repository_owner": owner,
        "repository_visibility": "private",
        "actor": actor,
        "event_name": event_name,
        "workflow": workflow_file.rsplit(".", 1)[0],
        "workflow_ref": workflow_ref,
        "job_workflow_ref": workflow_ref,
        "run_id": "1234567890",
        "run_number": "42",
        "run_attempt": "1",
        "runner_environment": runner_environment,
        "nbf": provider.now() - 600,
    }
    if environment is not None:
        body["environment"] = environment
    body.update(claims)
    return provider.id_token(sub, aud=aud, lifetime=lifetime, **body)
