"""The demo IdPs inside the broker, over plain HTTP (no Chromium needed, these always run).

The README's promise first: ``sts-broker serve config/demo.yaml``, as a real process with
its port taken from ``public_url``, serves the sign-in page, both fixture IdPs and the
broker's self-fetch of their metadata and keys with its one worker, through to the role
picker. Then the guards: no demo without ``demo:``, none off loopback, none without users.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import httpx
import pytest

from broker.app import create_app
from broker.config import ConfigError, load_config
from tests.browser.conftest import DEMO_CONFIG, ROOT
from tests.integration.conftest import serve_process, start_server, stop_server

CLIENT_SECRET = "DEMOoidcCLIENTsecretDoNotUseOutsideDemo"
CORP = "arn:aws:iam::111111111111:saml-provider/Corp"


def _sign_in_with_saml(client: httpx.Client, user: str) -> httpx.Response:
    """The SP-initiated login a browser makes, hop by hop, up to the session cookie.

    Returns the IdP's login page, whose headers the caller checks."""
    start = client.get("/login/corp")
    assert start.status_code == 303
    to_idp = client.get(start.headers["location"])
    assert to_idp.status_code == 302
    login_page = client.get(to_idp.headers["location"])
    assert login_page.status_code == 200
    handle = re.search(r'name="handle" value="([^"]+)"', login_page.text)
    assert handle is not None
    answer = client.post(
        "/_demo/saml/login",
        content=f"handle={handle.group(1)}&user={user}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    form = dict(re.findall(r'name="(SAMLResponse|RelayState)" value="([^"]*)"', answer.text))
    action = re.search(r'<form method="post" action="([^"]+)"', answer.text)
    assert action is not None
    acs = client.post(
        html.unescape(action.group(1)), data={k: html.unescape(v) for k, v in form.items()}
    )
    assert acs.status_code == 303, acs.text
    return login_page


def test_readme_serve_command_gives_the_clickable_demo_on_one_port() -> None:
    # serve_process appends "--port PORT"; the shell turns it into the public_url the
    # config reads, so the command run is the README's, with no --port at all.
    command = [
        "sh",
        "-c",
        'STS_BROKER_PUBLIC_URL="http://127.0.0.1:$2" exec "$0" -m broker serve config/demo.yaml',
        sys.executable,
    ]
    with serve_process(command, cwd=ROOT) as served, httpx.Client(base_url=served.url) as client:
        signin = client.get("/")
        assert signin.status_code == 200
        assert "Corp SSO" in signin.text and "Google" in signin.text

        discovery = client.get("/_demo/oidc/google/.well-known/openid-configuration").json()
        assert discovery["issuer"] == f"{served.url}/_demo/oidc/google"
        metadata = client.get("/_demo/saml/metadata")
        assert metadata.headers["content-type"].startswith("application/samlmetadata+xml")
        assert f'entityID="{served.url}/_demo/saml/metadata"' in metadata.text

        idp_page = _sign_in_with_saml(client, "alice")
        # The IdP page is the IdP's, not under the broker's page policy (which would block
        # its nonce'd auto-post script); the broker's own pages keep theirs.
        assert "script-src 'self'" not in idp_page.headers.get("content-security-policy", "")
        roles = client.get("/roles")
        assert roles.status_code == 200
        assert "script-src 'self'" in roles.headers["content-security-policy"]
        listed = set(re.findall(r'name="role" value="([^"]+)"', roles.text))
        assert listed == {
            "arn:aws:iam::111111111111:role/Dev",
            "arn:aws:iam::111111111111:role/ReadOnly",
            "arn:aws:iam::222222222222:role/ReadOnly",
        }
    assert "demo IdPs at" in served.output
    assert CLIENT_SECRET not in served.output


def test_no_demo_section_no_demo_paths(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        'public_url: http://127.0.0.1:8080\naccounts:\n  "111111111111": {alias: dev}\n'
    )
    url, running = start_server(create_app(load_config(path)))
    try:
        assert httpx.get(f"{url}/_demo/saml/metadata").status_code == 404
        assert httpx.get(f"{url}/_demo/oidc/google/jwks").status_code == 404
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        stop_server(running)


def test_demo_idps_refuse_a_public_url_off_loopback_even_for_a_config_built_in_code() -> None:
    loaded = load_config(DEMO_CONFIG, environ={})
    # load_config refuses this file with such a URL; a config built in code skips that check.
    moved = loaded.model_copy(update={"public_url": "https://broker.example.com"})
    with pytest.raises(ConfigError) as error:
        create_app(moved)
    assert "demo: the demo IdPs sign in whoever clicks" in str(error.value)
    assert "'broker.example.com'" in str(error.value)


def test_demo_config_off_loopback_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(DEMO_CONFIG, environ={"STS_BROKER_PUBLIC_URL": "https://sts.example.com"})
    assert "demo: the demo IdPs sign in whoever clicks" in str(error.value)


@pytest.mark.parametrize(
    ("demo", "reason"),
    [
        ("{saml_idp: true}", "demo: list under users the people the demo IdPs sign in"),
        (
            "{oidc_provider: true, users: {alice: {name: A, email: a@example.com, "
            "saml_roles: ['arn:aws:iam::111111111111:role/Dev']}}}",
            "must be 'ROLE_ARN,SAML_PROVIDER_ARN' (AWS's Role attribute)",
        ),
        (
            "{saml_idp: true, users: {alice: {name: A, email: not-an-email}}}",
            "must be an email address",
        ),
    ],
)
def test_demo_settings_mistakes_are_reported(tmp_path: Path, demo: str, reason: str) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        "public_url: http://127.0.0.1:8080\n"
        f"demo: {demo}\n"
        "accounts:\n"
        '  "111111111111": {alias: dev}\n'
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert reason in str(error.value)
    assert str(error.value).startswith(f"{path}:2: demo")
