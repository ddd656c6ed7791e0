"""The people pages against a live broker and a live fixture SAML IdP: the sign-in page and
its last-used memory, the role picker, POST /assume to the credentials page (whose blocks
are run by a real bash, boto3 and the AWS CLI) and to the console, switch role, logout."""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
import yaml
from markupsafe import escape

from broker.app import create_app
from broker.client.profiles import process_command, write_profiles
from broker.config import load_config
from idp_fixtures import SamlUser
from idp_fixtures.oidc.server import OidcServer
from idp_fixtures.saml import SamlServer, serve_saml_in_thread
from idp_fixtures.saml.presets import okta
from tests.integration.conftest import DEV, PROD, bind_loopback, start_server, stop_server
from tests.integration.test_saml import _auto_post_form, _request_id, _sp_certificate

OTHER = "333333333333"
CORP = f"arn:aws:iam::{DEV}:saml-provider/Corp"
PROD_CORP = f"arn:aws:iam::{PROD}:saml-provider/Corp"
OTHER_PROVIDER = f"arn:aws:iam::{OTHER}:saml-provider/Other"


def role(name: str, account: str = DEV) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


READER, OPS, DENIED, LEGACY, OUTSIDER = (
    role(n) for n in ("SamlReader", "SamlOps", "SamlDenied", "Legacy", "Outsider")
)
DEPLOY = role("ProdDeploy", PROD)
ALICE_ROLES = ((READER, CORP), (OPS, CORP), (DENIED, CORP), (LEGACY, CORP), (DEPLOY, PROD_CORP))
"""Granted by the IdP; the picker must show exactly READER, OPS and DEPLOY (DENIED's trust
wants another IdP, LEGACY is outside the login provider's role patterns)."""
MANY = tuple((role(n), CORP) for n in ("SamlReader", "SamlOps", "Audit", "Billing", "Network"))
BOB_ROLES = (*MANY, (DEPLOY, PROD_CORP))
RSN = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"


def _trust(provider: str, acs: str, **extra: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                "Condition": {"StringEquals": {"saml:aud": acs, **extra}},
            }
        ],
    }


@dataclass
class People:
    url: str
    idp: SamlServer

    @property
    def acs(self) -> str:
        return f"{self.url}/saml/acs"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url)

    def sign_in(self, client: httpx.Client, name: str = "corp", **options: Any) -> httpx.Response:
        """Browser steps from the sign-in button: /login/NAME -> /saml/login -> IdP -> ACS.

        With no ``options`` the IdP's own page answers (auto-login alice); with options the
        IdP's key signs a response built here for the same AuthnRequest and RelayState,
        as the IdP would for another user or attribute set.
        """
        button = client.get(f"/login/{name}")
        assert button.status_code == 303, button.text
        start = client.get(button.headers["location"])
        assert start.status_code == 302, start.text
        location = start.headers["location"]
        if not options:
            at_idp = client.get(location, follow_redirects=True)
            form = _auto_post_form(at_idp.text)
            return client.post(form.pop("action"), data=form)
        relay = parse_qs(urlsplit(location).query)["RelayState"][0]
        options.setdefault("roles", ALICE_ROLES)
        options.setdefault("session_name", "alice@example.com")
        assertion = okta(
            self.idp.idp,
            sp_entity_id=f"{self.url}/saml/metadata",
            acs_url=self.acs,
            in_response_to=_request_id(location),
            **options,
        )
        return client.post(self.acs, data={"SAMLResponse": assertion, "RelayState": relay})

    @contextmanager
    def signed_in(self, **options: Any) -> Iterator[httpx.Client]:
        """A browser (httpx client with its cookies) signed in through :meth:`sign_in`."""
        with self.client() as client:
            done = self.sign_in(client, **options)
            assert done.status_code == 303, done.text
            assert done.headers["location"] == "/roles"
            yield client


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory, oidc_server: OidcServer) -> Iterator[People]:
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    acs = f"{url}/saml/acs"
    google = oidc_server.add_issuer("people-google", replace=True)
    users = [
        SamlUser("alice", email="alice@example.com", roles=ALICE_ROLES, session_name="alice@x.io"),
        SamlUser("bob", email="bob@example.com", roles=BOB_ROLES, session_name="bob@x.io"),
    ]
    with serve_saml_in_thread(users=users, auto_login="alice") as idp:
        provider = {"metadata_url": idp.metadata_url}
        dev_roles: dict[str, Any] = {
            "SamlReader": {
                "max_session_duration": 7200,
                "description": "Read-only access to dev",
                "trust_policy": _trust(CORP, acs),
            },
            "SamlDenied": {
                "trust_policy": _trust(CORP, acs, **{"saml:iss": "https://another-idp.example"}),
            },
        }
        for name in ("SamlOps", "Legacy", "Outsider", "Audit", "Billing", "Network"):
            dev_roles[name] = {"trust_policy": _trust(CORP, acs)}
        config = {
            "public_url": url,
            "token_keys": [{"id": "p1", "secret": base64.b64encode(os.urandom(32)).decode()}],
            "login": {
                "providers": {
                    "corp": {
                        "label": "Corp SSO",
                        "saml": {"account": DEV, "provider": "Corp"},
                        "roles": ["arn:aws:iam::*:role/Saml*", DEPLOY, role("Outsider")]
                        + [role(n) for n in ("Audit", "Billing", "Network")],
                    },
                    "google": {
                        "label": "Google",
                        "oidc": {"url": google.issuer, "client_id": "people-broker"},
                    },
                }
            },
            "accounts": {
                DEV: {
                    "alias": "dev",
                    "saml_providers": {"Corp": provider},
                    "oidc_providers": [{"url": google.issuer, "client_ids": ["people-broker"]}],
                    "roles": dev_roles,
                },
                PROD: {
                    "alias": "prod",
                    "saml_providers": {"Corp": provider},
                    "roles": {"ProdDeploy": {"trust_policy": _trust(PROD_CORP, acs)}},
                },
                OTHER: {"saml_providers": {"Other": provider}},
            },
        }
        path = tmp_path_factory.mktemp("people") / "broker.yaml"
        path.write_text(yaml.safe_dump(config))
        broker_url, running = start_server(create_app(load_config(path)), sock)
        setup = People(url=broker_url, idp=idp)
        # The IdP verifies the broker's signed AuthnRequests, as in test_saml.
        idp.idp.register_sp(f"{url}/saml/metadata", (acs,), cert=_sp_certificate(setup))
        try:
            yield setup
        finally:
            stop_server(running)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def _roles_listed(page: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="role" value="([^"]+)">', page)


def _assume(
    client: httpx.Client, role_arn: str, target: str = "credentials", **form: str
) -> httpx.Response:
    token = _csrf(client.get("/roles").text)
    data = {"csrf_token": token, "role": role_arn, "duration": "3600", "target": target, **form}
    return client.post("/assume", data=data)


def _block(page: str, block_id: str) -> str:
    found = re.search(rf'<pre id="{block_id}"[^>]*><code>(.*?)</code></pre>', page, re.S)
    assert found is not None, block_id
    return html.unescape(found.group(1))


# ---------------------------------------------------------------------- sign-in page


def test_signin_page_lists_the_login_providers(people: People) -> None:
    page = httpx.get(f"{people.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    links = re.findall(
        r'<a class="button provider[^"]*" href="([^"]+)">\s*<span class="provider-label">([^<]+)',
        page.text,
    )
    assert links == [("/login/corp", "Corp SSO"), ("/login/google", "Google")]
    # Account SAML providers not named by login.providers are not listed once providers are.
    assert "Other" not in page.text
    assert "Continue as" not in page.text and "Last used" not in page.text
    # The STS API at / is untouched: a query string still means an STS call.
    api = httpx.get(f"{people.url}/", params={"Action": "GetCallerIdentity"})
    assert api.status_code in (400, 403) and "<ErrorResponse" in api.text


def test_login_route_remembers_the_provider_and_starts_its_protocol(people: People) -> None:
    with people.client() as client:
        google = client.get("/login/google", params={"return_to": "/roles/Dev?x=1"})
        assert google.status_code == 303
        assert google.headers["location"] == "/oidc/login/google?return_to=%2Froles%2FDev%3Fx%3D1"
        cookie = google.headers["set-cookie"]
        assert cookie.startswith("sts-broker-last-login=google;")
        assert "Max-Age=31536000" in cookie and "SameSite=lax" in cookie
        assert "HttpOnly" in cookie and "Secure" not in cookie  # http loopback broker
        page = client.get("/").text
        links = re.findall(r'href="(/login/[a-z-]+)"', page)
        assert links == ["/login/google", "/login/corp"]  # last used first
        first = page.index("/login/google")
        assert page.index("Last used") > first and page.index("Last used") < page.index(
            "/login/corp"
        )

        corp = client.get("/login/corp", params={"return_to": "/cli/abc"})
        assert corp.headers["location"] == (
            f"/saml/login?provider={CORP.replace(':', '%3A').replace('/', '%2F')}"
            "&return_to=%2Fcli%2Fabc"
        )
        assert client.cookies.get("sts-broker-last-login") == "corp"


def test_signin_page_passes_a_safe_return_to_through(people: People) -> None:
    """Pages that need a sign-in (the CLI hand-off) send the browser to /?return_to=..."""
    page = httpx.get(f"{people.url}/", params={"return_to": "/cli/abc"})
    assert page.status_code == 200
    assert re.findall(r'href="(/login/[^"]+)"', page.text) == [
        "/login/corp?return_to=%2Fcli%2Fabc",
        "/login/google?return_to=%2Fcli%2Fabc",
    ]
    evil = httpx.get(f"{people.url}/", params={"return_to": "https://evil.example/cli"})
    assert re.findall(r'href="(/login/[^"]+)"', evil.text) == ["/login/corp", "/login/google"]
    with people.signed_in() as client:
        page = client.get("/", params={"return_to": "/cli/abc"})
        assert 'href="/cli/abc">Continue as alice</a>' in page.text


@pytest.mark.parametrize(
    "return_to",
    ["https://evil.example/roles", "//evil.example/roles", "/credentials", "/roles/../x", ""],
)
def test_login_route_drops_unsafe_return_to(people: People, return_to: str) -> None:
    response = httpx.get(f"{people.url}/login/corp", params={"return_to": return_to})
    assert response.status_code == 303
    assert response.headers["location"] == "/saml/login?" + "provider=" + CORP.replace(
        ":", "%3A"
    ).replace("/", "%2F")


def test_unknown_login_name_is_404_and_derived_saml_names_work(people: People) -> None:
    unknown = httpx.get(f"{people.url}/login/nope")
    assert unknown.status_code == 404
    assert "Unknown sign-in provider" in unknown.text
    assert "set-cookie" not in unknown.headers
    derived = httpx.get(f"{people.url}/login/saml-{OTHER}-other")
    assert derived.status_code == 303
    assert parse_qs(urlsplit(derived.headers["location"]).query)["provider"] == [OTHER_PROVIDER]


# ---------------------------------------------------------------------- role picker


def test_saml_login_lists_exactly_the_admitted_roles_grouped_by_account(people: People) -> None:
    with people.signed_in() as client:  # the real IdP page, auto-login alice
        page = client.get("/roles")
        assert page.status_code == 200
        assert 'Signed in as <strong>alice</strong> via <span class="issuer">Corp SSO' in page.text
        assert _roles_listed(page.text) == [OPS, READER, DEPLOY]
        headings = re.findall(r"<h2>([^<]+)</h2>", page.text)
        assert headings == [f"dev ({DEV})", f"prod ({PROD})"]
        assert (
            page.text.index(f"dev ({DEV})")
            < page.text.index(OPS)
            < page.text.index(f"prod ({PROD})")
            < page.text.index(DEPLOY)
        )
        assert "Read-only access to dev" in page.text
        # SamlReader's maximum is 2 h: 15 min to 2 h offered, 1 h preselected.
        reader = page.text[page.text.index(f'value="{READER}"') :]
        select = reader[: reader.index("</select>")]
        assert re.findall(r'<option value="(\d+)"', select) == ["900", "1800", "3600", "7200"]
        assert '<option value="3600" selected>' in select
        assert "data-filter" not in page.text  # 3 roles: no filter box
        assert "Sign out" in page.text


def test_signin_page_with_a_session_offers_continue_and_sign_out(people: People) -> None:
    with people.signed_in() as client:
        page = client.get("/").text
        assert 'href="/roles">Continue as alice</a>' in page
        assert 'action="/logout"' in page and _csrf(page)


def test_many_roles_get_a_filter_box(people: People) -> None:
    with people.signed_in(user="bob", roles=BOB_ROLES, session_name="bob@x.io") as client:
        page = client.get("/roles").text
        assert len(_roles_listed(page)) == 6
        assert 'data-filter="role"' in page
        assert "Signed in as <strong>bob</strong>" in page


def test_saml_session_duration_bounds_the_choices(people: People) -> None:
    with people.signed_in(session_duration=1200) as client:
        page = client.get("/roles").text
        reader = page[page.index(f'value="{READER}"') :]
        select = reader[: reader.index("</select>")]
        assert re.findall(r'<option value="(\d+)"', select) == ["900"]
        assert '<option value="900" selected>' in select


def test_a_saml_session_about_to_end_offers_what_is_left(people: People) -> None:
    """SessionNotOnOrAfter in 10 minutes: the only choice is the API minimum, which the
    engine cuts to the end of the sign-in, and the label says so."""
    with people.signed_in(session_not_on_or_after=time.time() + 600) as client:
        page = client.get("/roles").text
        assert _roles_listed(page) == [OPS, READER, DEPLOY]
        assert page.count('<option value="900" selected>9 min (until your sign-in ends)') == 3
        issued = _assume(client, READER, duration="900")
        assert issued.status_code == 200
        expires = re.search(r'datetime="([^"]+)"', issued.text)
        assert expires is not None
        left = datetime.fromisoformat(expires.group(1)).timestamp() - time.time()
        assert 500 < left <= 600


def test_no_admitted_role_says_so_and_how_to_fix_it(people: People) -> None:
    with people.signed_in(roles=((DENIED, CORP),)) as client:
        page = client.get("/roles")
        assert page.status_code == 200
        assert _roles_listed(page.text) == []
        assert "No roles are available to you" in page.text
        assert "trust policy" in page.text
        # For administrators: why, role by role, without the policy's values (they may be
        # other people's identities).
        assert (
            f"<li><code>{DENIED}: Allow statement 0: condition StringEquals on saml:iss does "
            "not hold</code></li>"
        ) in page.text
        assert "another-idp.example" not in page.text


def test_roles_needs_a_session(people: People) -> None:
    response = httpx.get(f"{people.url}/roles")
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_display_name_is_escaped(people: People) -> None:
    name = '<img src=x onerror="alert(1)">'
    with people.signed_in(name_id=name) as client:
        page = client.get("/roles").text
        assert name not in page
        assert str(escape(name)) in page


# ---------------------------------------------------------------------- /assume refusals


def test_a_role_the_signin_does_not_grant_is_refused(people: People) -> None:
    with people.signed_in() as client:
        for arn in (OUTSIDER, LEGACY, DENIED, role("SamlReader", OTHER)):
            refused = _assume(client, arn)
            assert refused.status_code == 403, arn
            assert '<code class="error-code">AccessDenied</code>' in refused.text
            assert "Choose a role" in refused.text  # the picker again, still usable
            assert _roles_listed(refused.text) == [OPS, READER, DEPLOY]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"duration": "10800"}, "exceeds the MaxSessionDuration"),
        ({"duration": "abc"}, "must be a number of seconds"),
        ({"duration": "60"}, "900"),
        ({"target": "shell"}, "Choose Console or Credentials"),
    ],
)
def test_bad_assume_forms_are_validation_errors(
    people: People, form: dict[str, str], message: str
) -> None:
    with people.signed_in() as client:
        refused = _assume(client, READER, **form)
        assert refused.status_code == 400, refused.text
        assert '<code class="error-code">ValidationError</code>' in refused.text
        assert message in html.unescape(refused.text)


def test_a_repeated_field_is_refused(people: People) -> None:
    with people.signed_in() as client:
        token = _csrf(client.get("/roles").text)
        body = f"csrf_token={token}&role={READER}&role={DEPLOY}&duration=3600&target=console"
        refused = client.post(
            "/assume",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert refused.status_code == 400
        assert "ValidationError" in refused.text


@pytest.mark.parametrize("path", ["/assume", "/logout"])
def test_csrf_is_required_on_assume_and_logout(people: People, path: str) -> None:
    with people.signed_in() as client:
        form = {"role": READER, "duration": "3600", "target": "credentials"}
        missing = client.post(path, data=form)
        assert missing.status_code == 403 and "CsrfTokenMissing" in missing.text
        wrong = client.post(path, data={**form, "csrf_token": "A" * 43})
        assert wrong.status_code == 403 and "CsrfTokenInvalid" in wrong.text
        # Another browser's valid token does not work either.
        with people.signed_in() as other:
            theirs = _csrf(other.get("/roles").text)
        stolen = client.post(path, data={**form, "csrf_token": theirs})
        assert stolen.status_code == 403 and "CsrfTokenInvalid" in stolen.text
        assert client.get("/roles").status_code == 200  # nothing happened


def test_assume_after_logout_goes_to_signin(people: People) -> None:
    """A form rendered before logout still passes CSRF (the token is bound to the cookie,
    not to the Store), so the route itself must find no session and send the browser to /."""
    with people.signed_in() as client:
        cookie = client.cookies.get("sts-broker") or ""
        token = _csrf(client.get("/roles").text)
        client.post("/logout", data={"csrf_token": token})
    with httpx.Client(base_url=people.url, cookies={"sts-broker": cookie}) as stale:
        form = {"csrf_token": token, "role": READER, "duration": "3600", "target": "console"}
        response = stale.post("/assume", data=form)
        assert response.status_code == 303 and response.headers["location"] == "/"


# ---------------------------------------------------------------------- credentials


def _aws_cli() -> str:
    found = shutil.which("aws", path=str(Path(sys.executable).parent))
    assert found, "the AWS CLI is a test dependency (awscli)"
    return found


def test_credentials_page_blocks_work_in_bash_boto3_and_the_aws_cli(
    people: People, tmp_path: Path
) -> None:
    with people.signed_in() as client:
        page = _assume(client, READER, duration="1800")
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    session_arn = f"arn:aws:sts::{DEV}:assumed-role/SamlReader/alice@x.io"
    assert f'<code class="role-arn">{READER}</code>' in text
    assert f'<code class="session-arn">{session_arn}</code>' in text
    assert f'<dd class="account-label">dev ({DEV})</dd>' in text
    assert re.search(r'<time class="expires" datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', text)
    assert 'href="/roles">Switch role</a>' in text
    assert "15 minutes" in text

    # bash/zsh: a real bash evaluates the block exactly as a person's shell would.
    exports = _block(text, "bash")
    shown = subprocess.run(
        [
            "bash",
            "-c",
            exports + '\nprintf "%s\\n" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"'
            ' "$AWS_SESSION_TOKEN" "$AWS_ENDPOINT_URL_STS"',
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout.splitlines()
    key_id, secret, token, endpoint = shown
    assert endpoint == people.url
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )
    assert sts.get_caller_identity()["Arn"] == session_arn

    # The fish and PowerShell blocks carry the same values, quoted for their shells.
    assert f"set -gx AWS_SESSION_TOKEN '{token}'" in _block(text, "fish")
    assert f"$Env:AWS_SECRET_ACCESS_KEY = '{secret}'" in _block(text, "powershell")

    # The two AWS files, pasted as they are: the AWS CLI uses the static keys profile with
    # no endpoint or region flag or variable (the [services] section sends STS to the
    # broker, the profile carries the broker's region).
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(_block(text, "credentials-file") + "\n")
    (aws / "config").write_text(_block(text, "config-file") + "\n")
    cli = subprocess.run(
        [_aws_cli(), "sts", "get-caller-identity", "--profile", "samlreader-static"],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert f'"Arn": "{session_arn}"' in cli.stdout

    # Byte for byte what `sts-broker login --profile samlreader` writes into empty files
    # (but for credential_process, which names sts-broker instead of the CLI's Python).
    written = tmp_path / "written"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_CONFIG_FILE", str(written / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(written / "credentials"))
        keys = {"AccessKeyId": key_id, "SecretAccessKey": secret, "SessionToken": token}
        assert write_profiles("samlreader", people.url, keys, "us-east-1") == []
    command = "sts-broker credential-process --profile samlreader"
    config = (written / "config").read_text().replace(process_command("samlreader"), command)
    assert _block(text, "config-file") + "\n" == config
    assert _block(text, "credentials-file") + "\n" == (written / "credentials").read_text()
    assert _block(text, "login-command") == (
        f"sts-broker login --broker {people.url} --role {READER} --profile samlreader"
    )


def test_console_target_lands_on_the_console_page(people: People) -> None:
    with people.signed_in() as client:
        go = _assume(client, DEPLOY, target="console")
        assert go.status_code == 303
        location = go.headers["location"]
        assert location.startswith(f"{people.url}/federation?Action=login&")
        query = parse_qs(urlsplit(location).query)
        assert query["Destination"] == [f"{people.url}/console"]
        login = client.get(location)
        assert login.status_code == 302
        assert login.headers["location"] == f"{people.url}/console"
        console = client.get("/console")
        assert console.status_code == 200
        assert f"arn:aws:sts::{PROD}:assumed-role/ProdDeploy/alice@x.io" in console.text
        assert f'<code class="principal-arn">{DEPLOY}</code>' in console.text


def test_console_header_switches_role_and_signs_out_of_the_console_only(people: People) -> None:
    with people.signed_in() as client:
        landing = client.get(_assume(client, READER, target="console").headers["location"])
        landing = client.get(landing.headers["location"])
        assert landing.status_code == 200
        arn = f"arn:aws:sts::{DEV}:assumed-role/SamlReader/alice@x.io"
        assert f'<span class="user" title="{arn}">alice@x.io · SamlReader</span>' in landing.text
        assert '<a class="menu-link" href="/roles">Switch role</a>' in landing.text
        found = re.search(
            r'action="/console/logout">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
            landing.text,
        )
        assert found is not None, landing.text
        # The browser session's token passes the CSRF middleware but is not the console's.
        browser_token = _csrf(client.get("/roles").text)
        wrong = client.post("/console/logout", data={"csrf_token": browser_token})
        assert wrong.status_code == 403 and "<code>CsrfTokenInvalid</code>" in wrong.text

        bye = client.post("/console/logout", data={"csrf_token": found.group(1)})
        assert bye.status_code == 303 and bye.headers["location"] == "/"
        assert client.get("/console").status_code == 302  # the console session is over
        assert client.get("/roles").status_code == 200  # the sign-in is not
        assert "Continue as" in client.get("/").text


def test_open_console_link_on_the_credentials_page_works(people: People) -> None:
    with people.signed_in() as client:
        page = _assume(client, OPS)
        link = re.search(r'<a class="button primary open-console" href="([^"]+)"', page.text)
        assert link is not None
        landing = client.get(html.unescape(link.group(1)), follow_redirects=True)
        assert landing.status_code == 200
        assert "assumed-role/SamlOps/alice@x.io" in landing.text


def test_switch_role_needs_no_new_idp_login(people: People) -> None:
    with people.signed_in() as client:
        first = _assume(client, READER)
        assert "assumed-role/SamlReader/alice@x.io" in first.text
        # Same browser session, another account's role: no IdP round trip, no ACS post.
        second = _assume(client, DEPLOY)
        assert second.status_code == 200
        assert f"arn:aws:sts::{PROD}:assumed-role/ProdDeploy/alice@x.io" in second.text
        assert f'<dd class="account-label">prod ({PROD})</dd>' in second.text


def test_logout_ends_the_session(people: People) -> None:
    with people.signed_in() as client:
        token = _csrf(client.get("/roles").text)
        bye = client.post("/logout", data={"csrf_token": token})
        assert bye.status_code == 303 and bye.headers["location"] == "/"
        assert (
            'sts-broker="";' in bye.headers["set-cookie"]
            or "Max-Age=0" in bye.headers["set-cookie"]
        )
        assert client.get("/roles").status_code == 303
        page = client.get("/").text
        assert "Continue as" not in page


# ---------------------------------------------------------------------- ACS


def test_response_without_role_session_name_is_refused_at_the_acs(people: People) -> None:
    with people.client() as client:
        done = people.sign_in(client, attributes={RSN: None}, session_name=None)
        assert done.status_code == 400, done.text
        assert "RoleSessionName" in done.text
        assert "InvalidIdentityToken" in done.text
        assert "sts-broker=" not in done.headers.get("set-cookie", "")
        assert client.get("/roles").status_code == 303


# ---------------------------------------------------------------------- page hygiene


def test_pages_have_no_inline_script_or_style_and_the_assets_are_served(people: People) -> None:
    with people.signed_in(user="bob", roles=BOB_ROLES, session_name="bob@x.io") as client:
        pages = [client.get("/").text, client.get("/roles").text, _assume(client, READER).text]
    for text in pages:
        assert re.findall(r"<script(?![^>]*\bsrc=)", text) == []
        assert " style=" not in text and "<style" not in text
        assert re.search(r"\son[a-z]+=", text) is None
    js = httpx.get(f"{people.url}/static/app.js")
    assert js.status_code == 200 and "clipboard" in js.text
    css = httpx.get(f"{people.url}/static/style.css")
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text


def test_an_unknown_path_is_a_page_for_browsers_and_text_for_the_rest(people: People) -> None:
    browser = httpx.get(f"{people.url}/no/such/page", headers={"Accept": "text/html"})
    assert browser.status_code == 404
    assert browser.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in browser.headers
    assert "<h1>Page not found</h1>" in browser.text
    assert "There is no page at /no/such/page." in browser.text
    sdk = httpx.get(f"{people.url}/no/such/page")
    assert (sdk.status_code, sdk.text) == (404, "Not Found")
    # The path is shown escaped (and cut), never as markup.
    evil = httpx.get(f"{people.url}/%3Cscript%3E" + "x" * 300, headers={"Accept": "text/html"})
    assert "<script>" not in evil.text and "&lt;script&gt;" in evil.text
    assert "x" * 200 not in evil.text
    wrong = httpx.get(f"{people.url}/assume", headers={"Accept": "text/html"})
    assert wrong.status_code == 405 and "/assume does not answer GET requests" in wrong.text
