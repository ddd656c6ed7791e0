"""Attacks on the CLI hand-off, each built for real against a live broker (and the real CLI
where the CLI is the target), each refused with its exact status and code."""

from __future__ import annotations

import os
import re

import httpx
import pytest

from broker.pkce import challenge_of, new_verifier
from tests.integration.cli_setup import (
    NOT_GRANTED,
    READER,
    CliBroker,
    CliHome,
    approval_form,
    logged_in,
    read_until,
    url_in,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    return response.status_code, body["error"]


# ---------------------------------------------------------------------- authorization codes


def test_a_code_redeemed_twice_is_refused_the_second_time(cli: CliBroker) -> None:
    verifier = new_verifier()
    with cli.signed_in() as browser:
        code = cli.code_for(browser, verifier)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    assert cli.token(**form).status_code == 200
    assert _error(cli.token(**form)) == (400, "invalid_grant")


def test_a_wrong_verifier_is_refused_and_burns_the_code(cli: CliBroker) -> None:
    """A local process that caught the redirect has the code but not the verifier."""
    verifier = new_verifier()
    with cli.signed_in() as browser:
        code = cli.code_for(browser, verifier)
    for guess in (new_verifier(), "", "x" * 200, verifier + "x"):
        thief = cli.token(grant_type="authorization_code", code=code, code_verifier=guess)
        assert _error(thief) == (400, "invalid_grant")
    owner = cli.token(grant_type="authorization_code", code=code, code_verifier=verifier)
    assert _error(owner) == (400, "invalid_grant")


def test_a_code_redeemed_with_another_logins_verifier_is_refused(cli: CliBroker) -> None:
    """Two logins in flight: each code redeems only with its own challenge's verifier."""
    mine, theirs = new_verifier(), new_verifier()
    with cli.signed_in() as browser:
        my_code = cli.code_for(browser, mine)
        their_code = cli.code_for(browser, theirs)
    crossed = cli.token(grant_type="authorization_code", code=my_code, code_verifier=theirs)
    assert _error(crossed) == (400, "invalid_grant")
    fine = cli.token(grant_type="authorization_code", code=their_code, code_verifier=theirs)
    assert fine.status_code == 200


def test_a_code_expires_after_two_minutes(cli: CliBroker) -> None:
    verifier = new_verifier()
    with cli.signed_in() as browser:
        code = cli.code_for(browser, verifier)
    with cli.later(121):
        late = cli.token(grant_type="authorization_code", code=code, code_verifier=verifier)
    assert _error(late) == (400, "invalid_grant")


# ---------------------------------------------------------------------- the CLI's listener


def test_a_callback_with_another_state_aborts_the_login(cli: CliBroker, user: CliHome) -> None:
    """Someone else's code sent to our listener (login CSRF) would give us their
    credentials: the CLI refuses it, saves nothing and never redeems it."""
    proc = user.start("login", "--broker", cli.url, "--role", READER, "--profile", "victim")
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    port = int(url.split("port=", 1)[1].split("&", 1)[0])
    listener = f"http://127.0.0.1:{port}"
    # A planted code from the attacker's own approved login.
    attacker = new_verifier()
    with cli.signed_in() as browser:
        planted = cli.code_for(browser, attacker)
    assert httpx.get(f"{listener}/favicon.ico").status_code == 404  # not the callback: ignored
    forged = httpx.get(f"{listener}/callback", params={"code": planted, "state": "A" * 32})
    assert forged.status_code == 400 and "not for the login in your terminal" in forged.text
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "state mismatch" in err
    assert not user.cache_file("victim").exists()
    assert not user.config_file.exists() and not user.credentials_file.exists()
    # The CLI never presented the planted code: its owner still can.
    owner = cli.token(grant_type="authorization_code", code=planted, code_verifier=attacker)
    assert owner.status_code == 200


# ---------------------------------------------------------------------- /cli/authorize input


CHALLENGE = challenge_of(new_verifier())
GOOD = {"port": "43210", "code_challenge": CHALLENGE, "state": "s" * 20}


@pytest.mark.parametrize(
    "query",
    [
        {**GOOD, "port": "abc"},
        {**GOOD, "port": "80"},
        {**GOOD, "port": "0"},
        {**GOOD, "port": "65536"},
        {**GOOD, "port": "999999"},
        {**GOOD, "port": "4321/evil.example"},
        {**GOOD, "port": ""},
        {**GOOD, "port": "-1"},
        {**GOOD, "code_challenge": "short"},
        {**GOOD, "code_challenge_method": "plain"},
        {**GOOD, "state": "<script>"},
        {**GOOD, "state": ""},
        {**GOOD, "role": "arn:aws:iam::111111111111:role/x\nSet-Cookie: a=b"},
        {**GOOD, "duration": "60"},
        {**GOOD, "duration": "99999999"},
        {**GOOD, "provider": "../saml/login"},
    ],
    ids=lambda q: next((f"{k}={v}" for k, v in q.items() if GOOD.get(k) != v), "?")[:40],
)
def test_bad_authorize_parameters_are_a_400_page_not_a_redirect(
    cli: CliBroker, query: dict[str, str]
) -> None:
    for browser_state in ("signed-out", "signed-in"):
        client = cli.browser() if browser_state == "signed-out" else None
        with client or cli.signed_in() as browser:
            response = browser.get("/cli/authorize", params=query)
            assert response.status_code == 400, (browser_state, response.text)
            assert "invalid_request" in response.text
            assert "location" not in response.headers


def test_a_repeated_port_is_refused(cli: CliBroker) -> None:
    with cli.signed_in() as browser:
        response = browser.get(
            f"/cli/authorize?port=43210&port=43211&code_challenge={CHALLENGE}&state={'s' * 20}"
        )
    assert response.status_code == 400
    assert "port is given more than once" in response.text


def test_a_role_the_signin_does_not_grant_is_refused_on_the_page_and_the_form(
    cli: CliBroker,
) -> None:
    with cli.signed_in() as browser:
        page = browser.get("/cli/authorize", params={**GOOD, "role": NOT_GRANTED})
        assert page.status_code == 403 and "AccessDenied" in page.text
        good = browser.get("/cli/authorize", params={**GOOD, "role": READER})
        tampered = approval_form(good.text)
        tampered["role"] = NOT_GRANTED
        response = browser.post("/cli/authorize", data=tampered)
    assert response.status_code == 403 and "AccessDenied" in response.text
    assert "location" not in response.headers


# ---------------------------------------------------------------------- CSRF on approval


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"csrf_token": None}, "CsrfTokenMissing"),
        ({"csrf_token": "forged"}, "CsrfTokenInvalid"),
    ],
)
def test_approval_needs_the_csrf_token(
    cli: CliBroker, change: dict[str, str | None], code: str
) -> None:
    with cli.signed_in() as browser:
        page = browser.get("/cli/authorize", params={**GOOD, "role": READER})
        form = {**approval_form(page.text), **change}
        response = browser.post(
            "/cli/authorize", data={k: v for k, v in form.items() if v is not None}
        )
    assert response.status_code == 403
    assert code in response.text
    assert "location" not in response.headers


def test_approval_from_another_site_is_refused(cli: CliBroker) -> None:
    with cli.signed_in() as browser:
        page = browser.get("/cli/authorize", params={**GOOD, "role": READER})
        response = browser.post(
            "/cli/authorize",
            data=approval_form(page.text),
            headers={"Origin": "https://evil.example"},
        )
        device = browser.post(
            "/cli/device/approve",
            data={"device": "0" * 64, "decision": "approve"},
        )
    assert response.status_code == 403 and "CrossOriginRequest" in response.text
    assert device.status_code == 403 and "CsrfTokenMissing" in device.text


# ---------------------------------------------------------------------- refresh tokens


def test_a_rotated_refresh_token_presented_again_revokes_the_login(cli: CliBroker) -> None:
    with cli.signed_in() as browser:
        first = cli.redeem(browser)
    second = cli.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["AccessKeyId"] != first["AccessKeyId"]
    # The old token again (a stolen copy, or the owner's after a thief used it) ...
    replay = cli.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert _error(replay) == (400, "invalid_grant")
    # ... and the chain is dead for whoever holds the newest token too.
    newest = cli.token(grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert _error(newest) == (400, "invalid_grant")


def _sign_out(browser: httpx.Client) -> None:
    roles = browser.get("/roles")
    token = re.search(r'name="csrf_token" value="([^"]+)"', roles.text)
    assert token is not None, roles.text
    out = browser.post("/logout", data={"csrf_token": token.group(1)})
    assert out.status_code == 303
    assert browser.get("/roles").status_code == 303  # the browser session is gone


def test_signing_out_in_the_browser_ends_the_cli_login(cli: CliBroker) -> None:
    with cli.signed_in() as browser:
        first = cli.redeem(browser)
        code_verifier = new_verifier()
        pending_code = cli.code_for(browser, code_verifier)
        _sign_out(browser)
    refresh = cli.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert _error(refresh) == (400, "invalid_grant")
    assert "signed out of the broker" in refresh.json()["error_description"]
    # A code approved before the sign-out is not redeemable after it either.
    late = cli.token(
        grant_type="authorization_code", code=pending_code, code_verifier=code_verifier
    )
    assert _error(late) == (400, "invalid_grant")


def test_an_idle_browser_session_does_not_end_the_cli_login(cli: CliBroker) -> None:
    # The CLI refreshes for hours while the browser tab sits idle: only a sign-out (or the
    # sign-in's absolute timeout) ends it.
    with cli.signed_in() as browser:
        first = cli.redeem(browser)
        with cli.later(20 * 60):  # past the 15-minute idle timeout
            assert browser.get("/roles").status_code == 303
            again = cli.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
            assert again.status_code == 200, again.text


def test_device_codes_redeem_once(cli: CliBroker) -> None:
    verifier = new_verifier()
    start = httpx.post(
        f"{cli.url}/cli/device", data={"code_challenge": challenge_of(verifier), "role": READER}
    ).json()
    with cli.signed_in() as browser:
        # Typed as people type: lower case, a space for the dash.
        typed = start["user_code"].lower().replace("-", " ")
        page = browser.get("/cli/device", params={"user_code": typed})
        assert page.status_code == 200, page.text
        browser.post("/cli/device/approve", data=approval_form(page.text))
    poll = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"]}
    assert _error(cli.token(**poll, code_verifier=new_verifier())) == (400, "invalid_grant")
    assert cli.token(**poll, code_verifier=verifier).status_code == 200
    assert _error(cli.token(**poll, code_verifier=verifier)) == (400, "invalid_grant")


def test_guessing_user_codes_is_cut_off(cli: CliBroker) -> None:
    with cli.signed_in() as browser:
        for _ in range(5):
            miss = browser.get("/cli/device", params={"user_code": "BCDF-GHJK"})
            assert miss.status_code == 400 and "No waiting terminal has this code" in miss.text
        cut = browser.get("/cli/device", params={"user_code": "BCDF-GHJL"})
    assert cut.status_code == 429 and "slow_down" in cut.text


# ---------------------------------------------------------------------- token endpoint input


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("", "application/x-www-form-urlencoded", "invalid_request"),
        (
            "grant_type=password&username=a",
            "application/x-www-form-urlencoded",
            "unsupported_grant_type",
        ),
        ('{"grant_type": "refresh_token"}', "application/json", "invalid_request"),
        (
            "grant_type=refresh_token&grant_type=authorization_code",
            "application/x-www-form-urlencoded",
            "invalid_request",
        ),
        (
            "grant_type=refresh_token&refresh_token=%00%ff",
            "application/x-www-form-urlencoded",
            "invalid_grant",
        ),
        (
            "grant_type=authorization_code&code=" + "A" * 43,
            "application/x-www-form-urlencoded",
            "invalid_grant",
        ),
        (
            "grant_type=" + DEVICE_GRANT + "&device_code=../x",
            "application/x-www-form-urlencoded",
            "invalid_grant",
        ),
        (
            "grant_type=refresh_token&refresh_token=" + "A" * 20000,
            "application/x-www-form-urlencoded",
            "invalid_request",
        ),
        ("\xff\xfe", "application/x-www-form-urlencoded", "invalid_request"),
    ],
)
def test_token_endpoint_junk_is_a_json_400_never_a_500(
    cli: CliBroker, body: str, content_type: str, expected: str
) -> None:
    response = httpx.post(
        f"{cli.url}/cli/token",
        content=body.encode("latin-1"),
        headers={"Content-Type": content_type},
    )
    assert _error(response) == (400, expected)
    assert response.headers["cache-control"] == "no-store"


def test_device_start_refuses_bad_input(cli: CliBroker) -> None:
    for form in ({}, {"code_challenge": "x"}, {"code_challenge": CHALLENGE, "duration": "5"}):
        assert _error(httpx.post(f"{cli.url}/cli/device", data=form)) == (400, "invalid_request")


# ---------------------------------------------------------------------- the cache file


def test_a_cache_file_readable_by_others_is_refused(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "shared")
    assert user.run("credential-process", "--profile", "shared").returncode == 0
    user.cache_file("shared").chmod(0o644)
    done = user.run("credential-process", "--profile", "shared")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "accessible by other users (mode 644)" in done.stderr
    secret = user.cache("shared")["credentials"]["SecretAccessKey"]
    assert secret not in done.stderr
    console = user.run("console", "--profile", "shared", "--no-browser")
    assert console.returncode == 1 and console.stdout == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_cache_owned_by_another_user_is_refused(cli: CliBroker, user: CliHome) -> None:
    """A cache file (or directory) another account owns may have been planted or read."""
    logged_in(cli, user, "theirs")
    nobody = 65534
    os.chown(user.cache_file("theirs"), nobody, nobody)
    done = user.run("credential-process", "--profile", "theirs")
    assert done.returncode == 1 and done.stdout == ""
    assert "is owned by another user; refusing to use it" in done.stderr
    os.chown(user.cache_file("theirs"), 0, 0)
    assert user.run("credential-process", "--profile", "theirs").returncode == 0
    directory = user.cache_file("theirs").parent
    os.chown(directory, nobody, nobody)
    done = user.run("credential-process", "--profile", "theirs")
    assert done.returncode == 1 and done.stdout == ""
    assert "is not a directory owned by you" in done.stderr


def test_a_symlinked_cache_file_is_refused(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "real")
    planted = user.cache_file("planted")
    os.symlink(user.cache_file("real"), planted)
    done = user.run("credential-process", "--profile", "planted")
    assert done.returncode == 1 and done.stdout == ""
    assert "cannot open" in done.stderr


def test_a_profile_name_cannot_escape_the_cache_directory(user: CliHome) -> None:
    done = user.run("credential-process", "--profile", "../../.ssh/id_rsa")
    assert done.returncode == 1
    assert "invalid profile name" in done.stderr


def test_login_refuses_plain_http_off_loopback(user: CliHome) -> None:
    done = user.run("login", "--broker", "http://broker.example.com")
    assert done.returncode == 2
    assert "must use https" in done.stderr
