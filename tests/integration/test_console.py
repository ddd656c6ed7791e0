"""Console federation (custom identity broker): getSigninToken, login and the landing page,
against a real broker on loopback with the console routes wired onto create_app's app."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.integration.conftest import (
    DEV,
    Broker,
    OffsetClock,
    served_broker,
    session_client,
)

DEV_ROLE = f"arn:aws:iam::{DEV}:role/Dev"
ONLY_FEDERATION = "Only federation tokens or assume role tokens may be used"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # Its own broker (serves /federation and /console itself): tests here move its clock.
    with served_broker(tmp_path_factory.mktemp("console")) as served:
        yield served


@pytest.fixture
def console_clock(console: Broker) -> Iterator[OffsetClock]:
    before = console.clock.offset
    yield console.clock
    console.clock.offset = before


def _role_credentials(broker: Broker, name: str = "console") -> dict[str, Any]:
    out = broker.sts("alice").assume_role(RoleArn=DEV_ROLE, RoleSessionName=name)
    return dict(out["Credentials"])


def _session(creds: dict[str, Any], **change: str) -> str:
    session = {
        "sessionId": creds["AccessKeyId"],
        "sessionKey": creds["SecretAccessKey"],
        "sessionToken": creds["SessionToken"],
    }
    session.update(change)
    return json.dumps(session)


def _get_token(broker: Broker, session: str, duration: int | None = None) -> httpx.Response:
    params = {"Action": "getSigninToken", "Session": session}
    if duration is not None:
        params["SessionDuration"] = str(duration)
    return httpx.get(f"{broker.url}/federation", params=params)


def _login(broker: Broker, token: str, destination: str | None = None) -> httpx.Response:
    query = urlencode(
        {
            "Action": "login",
            "Issuer": "https://idp.example.com/",
            "Destination": destination or f"{broker.url}/console",
            "SigninToken": token,
        }
    )
    return httpx.get(f"{broker.url}/federation?{query}")


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["Error"])


def test_sign_in_lands_on_the_console(console: Broker) -> None:
    creds = _role_credentials(console)
    answer = _get_token(console, _session(creds), 3600)
    assert answer.status_code == 200, answer.text
    token = answer.json()["SigninToken"]
    login = _login(console, token)
    assert login.status_code == 302
    assert login.headers["location"] == f"{console.url}/console"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    landing = httpx.get(login.headers["location"], cookies=login.cookies)
    assert landing.status_code == 200
    text = landing.text
    assert f"arn:aws:sts::{DEV}:assumed-role/Dev/console" in text
    assert DEV_ROLE in text
    assert '(<span class="alias">dev</span>)' in text
    assert "sts:AssumeRole" in text
    assert "No session policy" in text
    # AWS does not make SigninTokens single-use; neither do we (15 minutes, a secret URL).
    assert _login(console, token).status_code == 302


def test_federation_token_signs_in_with_session_limit(console: Broker) -> None:
    out = console.sts("dave").get_federation_token(Name="dave-console")
    creds = out["Credentials"]
    answer = _get_token(console, _session(creds))
    assert answer.status_code == 200, answer.text
    login = _login(console, answer.json()["SigninToken"])
    landing = httpx.get(f"{console.url}/console", cookies=login.cookies)
    assert "federated-user/dave-console" in landing.text
    assert "A session policy limits" in landing.text
    # SessionDuration is for AssumeRole* credentials only.
    _refusal(_get_token(console, _session(creds), 3600))


def test_session_token_credentials_are_refused(console: Broker) -> None:
    creds = console.sts("alice").get_session_token()["Credentials"]
    assert _refusal(_get_token(console, _session(creds))) == ONLY_FEDERATION


def test_long_term_keys_are_refused(console: Broker) -> None:
    key = console.keys["alice"]
    session = json.dumps({"sessionId": key.id, "sessionKey": key.secret})
    assert _refusal(_get_token(console, session)) == ONLY_FEDERATION


def test_wrong_secret_and_key_id_are_refused(console: Broker) -> None:
    creds = _role_credentials(console)
    assert "invalid" in _refusal(_get_token(console, _session(creds, sessionKey="x" * 40)))
    other = _role_credentials(console, "other")
    assert "invalid" in _refusal(
        _get_token(console, _session(creds, sessionId=other["AccessKeyId"]))
    )


def test_tampered_token_is_refused(console: Broker) -> None:
    creds = _role_credentials(console)
    token = creds["SessionToken"]
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert "invalid" in _refusal(_get_token(console, _session(creds, sessionToken=flipped)))
    assert "invalid" in _refusal(_get_token(console, "not json"))


def test_expired_credentials_are_refused(console: Broker, console_clock: OffsetClock) -> None:
    creds = _role_credentials(console)
    console_clock.offset += 3601
    assert "expired" in _refusal(_get_token(console, _session(creds)))


def test_signin_token_expires_after_15_minutes(console: Broker, console_clock: OffsetClock) -> None:
    creds = _role_credentials(console)
    token = _get_token(console, _session(creds), 3600).json()["SigninToken"]
    console_clock.offset += 15 * 60 + 1
    assert _login(console, token).status_code == 400


@pytest.mark.parametrize("duration", [899, 43201, -1])
def test_session_duration_out_of_range(console: Broker, duration: int) -> None:
    creds = _role_credentials(console)
    assert "SessionDuration" in _refusal(_get_token(console, _session(creds), duration))


def test_chained_credentials_limited_to_one_hour(console: Broker) -> None:
    dev = session_client(console, _role_credentials(console))
    chained = dev.assume_role(RoleArn=f"arn:aws:iam::{DEV}:role/Tagged", RoleSessionName="chained")
    creds = chained["Credentials"]
    assert "3600" in _refusal(_get_token(console, _session(creds), 3601))
    assert _get_token(console, _session(creds), 3600).status_code == 200
    assert _get_token(console, _session(creds), 43200).status_code == 400


@pytest.mark.parametrize(
    "destination",
    [
        "https://evil.example.com/console",
        "//evil.example.com/console",
        "/\\evil.example.com/console",
        "/consolex",
        "/",
        "http://127.0.0.1:1/console",
        "javascript:alert(1)",
    ],
)
def test_login_refuses_foreign_destination(console: Broker, destination: str) -> None:
    creds = _role_credentials(console)
    token = _get_token(console, _session(creds)).json()["SigninToken"]
    response = _login(console, token, destination)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_login_accepts_relative_console_path(console: Broker) -> None:
    creds = _role_credentials(console)
    token = _get_token(console, _session(creds)).json()["SigninToken"]
    response = _login(console, token, "/console/home?x=1")
    assert response.status_code == 302
    assert response.headers["location"] == f"{console.url}/console/home?x=1"


def test_login_refuses_tampered_or_session_token(console: Broker) -> None:
    creds = _role_credentials(console)
    token = _get_token(console, _session(creds)).json()["SigninToken"]
    flipped = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    assert _login(console, flipped).status_code == 400
    # An STS session token is not a SigninToken.
    assert _login(console, creds["SessionToken"]).status_code == 400


def test_console_without_cookie_redirects(console: Broker) -> None:
    response = httpx.get(f"{console.url}/console")
    assert response.status_code == 302
    assert response.headers["location"] == "/"
    forged = httpx.get(f"{console.url}/console", cookies={"sts-broker-console": "x" * 60})
    assert forged.status_code == 302


def test_signin_token_is_not_a_console_cookie(console: Broker) -> None:
    creds = _role_credentials(console)
    token = _get_token(console, _session(creds)).json()["SigninToken"]
    response = httpx.get(f"{console.url}/console", cookies={"sts-broker-console": token})
    assert response.status_code == 302


# ---------------------------------------------------------------------- landing page header


@contextmanager
def _console_browser(broker: Broker, name: str = "console") -> Iterator[httpx.Client]:
    """A browser (cookie jar) signed in to the console with role credentials."""
    token = _get_token(broker, _session(_role_credentials(broker, name))).json()["SigninToken"]
    login = _login(broker, token)
    assert login.status_code == 302
    with httpx.Client(base_url=broker.url, cookies=login.cookies) as client:
        yield client


def _signout_token(page: str) -> str:
    found = re.search(
        r'<form method="post" action="/console/logout">\s*'
        r'<input type="hidden" name="csrf_token" value="([^"]+)">',
        page,
    )
    assert found is not None, page
    return found.group(1)


def test_landing_page_header_names_the_session_and_signs_out(console: Broker) -> None:
    with _console_browser(console) as client:
        landing = client.get("/console")
        arn = f"arn:aws:sts::{DEV}:assumed-role/Dev/console"
        assert f'<span class="user" title="{arn}">console · Dev</span>' in landing.text
        # This broker has no people pages (no login provider): no role picker to go back to.
        assert client.get("/roles").status_code == 404
        assert "Switch role" not in landing.text
        assert "Sign out of console</button>" in landing.text
        # ... but its stylesheet is served, so the landing page is not bare HTML.
        style = client.get("/static/style.css")
        assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")

        bye = client.post("/console/logout", data={"csrf_token": _signout_token(landing.text)})
        assert bye.status_code == 303 and bye.headers["location"] == "/"
        assert 'sts-broker-console="";' in bye.headers["set-cookie"]
        assert "Max-Age=0" in bye.headers["set-cookie"]
        assert client.get("/console").status_code == 302
        # Signed out already: nothing to end, nothing to check.
        assert client.post("/console/logout").status_code == 303


@pytest.mark.parametrize(
    ("form", "headers", "code"),
    [
        ({}, {}, "CsrfTokenMissing"),
        ({"csrf_token": ""}, {}, "CsrfTokenMissing"),
        ({"csrf_token": "A" * 43}, {}, "CsrfTokenInvalid"),
        ({"csrf_token": "OTHER"}, {}, "CsrfTokenInvalid"),
        ({"csrf_token": "OURS"}, {"origin": "https://evil.example"}, "CrossOriginRequest"),
        ({"csrf_token": "OURS"}, {"origin": "null"}, "CrossOriginRequest"),
        ({"csrf_token": "OURS"}, {"referer": "https://evil.example/x"}, "CrossOriginRequest"),
    ],
)
def test_console_sign_out_refuses_forged_forms(
    console: Broker, form: dict[str, str], headers: dict[str, str], code: str
) -> None:
    with _console_browser(console, "victim") as victim, _console_browser(console) as other:
        ours = _signout_token(victim.get("/console").text)
        # Another console session's token is a real one, but not for this cookie.
        theirs = _signout_token(other.get("/console").text)
        data = {k: {"OURS": ours, "OTHER": theirs}.get(v, v) for k, v in form.items()}
        refused = victim.post("/console/logout", data=data, headers=headers)
        assert refused.status_code == 403, refused.text
        assert f"<code>{code}</code>" in refused.text
        assert "set-cookie" not in refused.headers
        assert victim.get("/console").status_code == 200  # still signed in
