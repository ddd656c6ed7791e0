"""``sts-broker login`` / ``credential-process`` / ``console`` as users run them: real CLI
processes against a live broker and a live fixture SAML IdP, the browser step driven with
httpx, and the real AWS CLI using the profiles the login wrote."""

from __future__ import annotations

import json
import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx

from broker.pkce import challenge_of, new_verifier
from tests.integration.cli_setup import (
    OPS,
    READER,
    READER_SESSION,
    CliBroker,
    CliHome,
    approval_form,
    read_until,
    url_in,
)


def _login_in_browser(cli: CliBroker, authorize_url: str) -> httpx.Response:
    """Sign in from the CLI's URL, approve, follow the redirect to the CLI's listener."""
    with cli.browser() as browser:
        page = cli.sign_in_from(browser, authorize_url)
        assert page.status_code == 200, page.text
        approved = browser.post("/cli/authorize", data=approval_form(page.text))
        assert approved.status_code == 303, approved.text
        return browser.get(approved.headers["location"])


def test_login_writes_profiles_the_aws_cli_uses_and_credential_process_refreshes(
    cli: CliBroker, user: CliHome
) -> None:
    # Comments and other profiles in the user's files must survive the login.
    user.config_file.parent.mkdir()
    user.config_file.write_text("# my settings\n[profile other]\nregion = eu-west-1\n")
    proc = user.start(
        "login", "--broker", cli.url, "--provider", "corp", "--role", READER, "--profile", "work"
    )
    said = read_until(proc, "Waiting for you to approve")
    url = url_in(said, f"{cli.url}/cli/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["role"] == [READER] and query["code_challenge_method"] == ["S256"]

    landed = _login_in_browser(cli, url)
    assert landed.status_code == 200 and "Return to your terminal" in landed.text
    # The CLI's page wears the broker's stylesheet and allows nothing else.
    assert f'<link rel="stylesheet" href="{cli.url}/static/style.css">' in landed.text
    assert landed.headers["content-security-policy"] == (
        f"default-src 'none'; style-src {cli.url}; img-src data:; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    assert landed.headers["referrer-policy"] == "no-referrer"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"Signed in as {READER_SESSION}" in err
    assert out == ""
    # $BROWSER was asked to open exactly the printed URL.
    assert user.opened.read_text().splitlines() == [url]

    config = user.config_file.read_text()
    assert config.startswith("# my settings\n[profile other]\nregion = eu-west-1\n")
    assert "[profile work]\ncredential_process = " in config
    assert "-m broker credential-process --profile work" in config
    assert f"[services sts-broker-work]\nsts =\n  endpoint_url = {cli.url}\n" in config
    assert "[work-static]\naws_access_key_id = ASIA" in user.credentials_file.read_text()
    assert os.stat(user.credentials_file).st_mode & 0o777 == 0o600
    cache_dir = user.cache_file("work").parent
    assert os.stat(cache_dir).st_mode & 0o777 == 0o700
    assert os.stat(user.cache_file("work")).st_mode & 0o777 == 0o600

    # The written (static) profile and the credential_process profile both work.
    assert user.caller("work-static", cli.url) == READER_SESSION
    assert user.caller("work", cli.url) == READER_SESSION
    # The profiles' [services] section points STS (only STS) at the broker.
    assert user.caller("work") == READER_SESSION
    assert user.caller("work-static") == READER_SESSION

    # The cached credentials expire: credential_process refreshes them (new key, new
    # refresh token), and the AWS CLI never sees the expired ones.
    before = user.cache("work")
    expired = dict(before)
    expired["credentials"] = {**before["credentials"], "Expiration": "2020-01-01T00:00:00Z"}
    user.cache_file("work").write_text(json.dumps(expired))
    assert user.caller("work", cli.url) == READER_SESSION
    after = user.cache("work")
    assert after["credentials"]["AccessKeyId"] != before["credentials"]["AccessKeyId"]
    assert after["refresh_token"] != before["refresh_token"]
    assert os.stat(user.cache_file("work")).st_mode & 0o777 == 0o600

    # credential-process itself prints the documented JSON, refreshed when < --refresh-before.
    printed = user.run("credential-process", "--profile", "work", "--refresh-before", "86400")
    assert printed.returncode == 0, printed.stderr
    output = json.loads(printed.stdout)
    assert set(output) == {
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }
    assert output["Version"] == 1
    assert output["AccessKeyId"] != after["credentials"]["AccessKeyId"]


def test_login_without_role_lets_the_person_choose_and_print_exports(
    cli: CliBroker, user: CliHome
) -> None:
    proc = user.start(
        "login", "--broker", cli.url, "--provider", "corp", "--profile", "pick", "--print-exports"
    )
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    with cli.browser() as browser:
        page = cli.sign_in_from(browser, url)
        assert 'type="radio"' in page.text and READER in page.text and OPS in page.text
        assert "form-action 'self' http://127.0.0.1:*" in page.headers["content-security-policy"]
        form = approval_form(page.text)
        form["role"] = OPS
        approved = browser.post("/cli/authorize", data=form)
        browser.get(approved.headers["location"])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    assert list(exports) == [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_STS",
    ]
    assert exports["AWS_ENDPOINT_URL_STS"] == f"'{cli.url}'"
    assert exports["AWS_REGION"] == "'us-east-1'"  # the broker's region
    assert not user.config_file.exists() and not user.credentials_file.exists()
    assert user.cache("pick")["role_arn"] == OPS


def test_denying_in_the_browser_fails_the_login_and_writes_nothing(
    cli: CliBroker, user: CliHome
) -> None:
    proc = user.start("login", "--broker", cli.url, "--provider", "corp", "--role", READER)
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    with cli.browser() as browser:
        page = cli.sign_in_from(browser, url)
        denied = browser.post("/cli/authorize", data=approval_form(page.text, "deny"))
        assert "error=access_denied" in denied.headers["location"]
        assert "code=" not in denied.headers["location"]
        assert browser.get(denied.headers["location"]).status_code == 400
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "denied" in err
    assert not user.cache_file("sts-broker").exists()
    assert not user.config_file.exists()


def test_device_flow_end_to_end(cli: CliBroker, user: CliHome) -> None:
    proc = user.start(
        "login", "--broker", cli.url, "--provider", "corp", "--role", READER,
        "--profile", "dev", "--no-browser",
    )  # fmt: skip
    said = read_until(proc, "Waiting for you to approve")
    assert f"open {cli.url}/cli/device" in said
    complete = url_in(said, f"{cli.url}/cli/device?user_code=")
    user_code = parse_qs(urlsplit(complete).query)["user_code"][0]
    assert f"enter the code:  {user_code}" in said
    with cli.browser() as browser:
        # Opened on another device with no session: sign in first, land on the approval.
        page = cli.sign_in_from(browser, complete)
        assert page.status_code == 200, page.text
        assert user_code in page.text
        done = browser.post("/cli/device/approve", data=approval_form(page.text))
        assert done.status_code == 200 and "Approved" in done.text
    with cli.signed_in() as browser:
        # The person may also type the code (any case, with or without the dash); once
        # approved it matches nothing any more.
        typed = browser.get("/cli/device", params={"user_code": user_code.lower().replace("-", "")})
        assert typed.status_code == 400
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not user.opened.exists()  # --no-browser opens nothing
    assert user.caller("dev", cli.url) == READER_SESSION


def test_console_opens_the_console_landing_page(cli: CliBroker, user: CliHome) -> None:
    proc = user.start("login", "--broker", cli.url, "--role", READER, "--profile", "c")
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    with cli.browser() as browser:
        # No --provider: the broker sends the browser to its sign-in page, and back after.
        first = browser.get(url)
        assert first.headers["location"].startswith("/?return_to=%2Fcli%2Fauthorize")
    _login_in_browser(cli, url)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    user.opened.unlink()
    done = user.run("console", "--profile", "c")
    assert done.returncode == 0, done.stderr
    login_url = done.stdout.strip()
    assert login_url.startswith(f"{cli.url}/federation?Action=login&")
    assert user.opened.read_text().splitlines() == [login_url]
    with httpx.Client() as browser:
        landing = browser.get(login_url, follow_redirects=True)
    assert landing.status_code == 200
    assert str(landing.url) == f"{cli.url}/console"
    assert READER_SESSION in landing.text


def test_credential_process_without_a_login_says_what_to_do(user: CliHome) -> None:
    done = user.run("credential-process", "--profile", "nobody")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no cached login for profile 'nobody'" in done.stderr
    assert "sts-broker login" in done.stderr


def test_expired_credentials_with_a_dead_refresh_token_are_never_printed(
    cli: CliBroker, user: CliHome
) -> None:
    with cli.signed_in() as browser:
        body = cli.redeem(browser)
    # What login would cache, but the refresh token is one the broker never issued.
    cache = user.cache_file("dead")
    cache.parent.mkdir(parents=True, mode=0o700)
    record = {
        "Version": 1,
        "broker": cli.url,
        "role_arn": READER,
        "credentials": {
            "AccessKeyId": body["AccessKeyId"],
            "SecretAccessKey": body["SecretAccessKey"],
            "SessionToken": body["SessionToken"],
            "Expiration": "2020-01-01T00:00:00Z",
        },
        "refresh_token": new_verifier(),
        "refresh_expires_at": body["refresh_expires_at"],
    }
    cache.write_text(json.dumps(record))
    cache.chmod(0o600)
    done = user.run("credential-process", "--profile", "dead")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "expired and cannot be refreshed" in done.stderr
    assert f"sts-broker login --broker {cli.url} --profile dead" in done.stderr
    assert body["SecretAccessKey"] not in done.stderr


def test_refresh_stops_when_the_browser_signin_would_have_ended(cli: CliBroker) -> None:
    with cli.signed_in() as browser:
        body = cli.redeem(browser)
    ends = time.mktime(time.strptime(body["refresh_expires_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 0 < ends - time.mktime(time.gmtime()) <= 8 * 3600  # web.session_absolute_seconds
    with cli.later(8 * 3600 + 60):
        late = cli.token(grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"


def test_device_codes_pace_pending_deny_and_expire(cli: CliBroker) -> None:
    verifier = new_verifier()
    start = httpx.post(
        f"{cli.url}/cli/device", data={"code_challenge": challenge_of(verifier), "role": READER}
    )
    assert start.status_code == 200, start.text
    device = start.json()
    assert device["interval"] == 5 and device["expires_in"] == 600
    assert device["verification_uri"] == f"{cli.url}/cli/device"
    poll = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device["device_code"],
        "code_verifier": verifier,
    }
    assert cli.token(**poll).json()["error"] == "authorization_pending"
    assert cli.token(**poll).json()["error"] == "slow_down"  # faster than the interval
    wrong = cli.token(**{**poll, "code_verifier": new_verifier()})
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    with cli.signed_in() as browser:
        page = browser.get("/cli/device", params={"user_code": device["user_code"]})
        denied = browser.post("/cli/device/approve", data=approval_form(page.text, "deny"))
        assert denied.status_code == 200 and "Denied" in denied.text
        again = browser.post("/cli/device/approve", data=approval_form(page.text))
        assert again.status_code == 409
    assert cli.token(**poll).json()["error"] == "access_denied"

    other = new_verifier()
    late = httpx.post(f"{cli.url}/cli/device", data={"code_challenge": challenge_of(other)})
    with cli.later(601):
        expired = cli.token(
            **{**poll, "device_code": late.json()["device_code"], "code_verifier": other}
        )
    assert expired.json()["error"] == "expired_token"


def test_parallel_credential_process_calls_refresh_once(cli: CliBroker, user: CliHome) -> None:
    """Tools run credential_process concurrently. Two refreshes with the same refresh token
    would look like theft to the broker (and revoke the login): the cache lock makes the
    second caller wait and reuse the first one's result."""
    proc = user.start("login", "--broker", cli.url, "--role", READER, "--profile", "par")
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    _login_in_browser(cli, url)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    cached = user.cache("par")
    cached["credentials"]["Expiration"] = "2020-01-01T00:00:00Z"
    user.cache_file("par").write_text(json.dumps(cached))
    calls = [user.start("credential-process", "--profile", "par") for _ in range(4)]
    results = [call.communicate(timeout=60) for call in calls]
    assert [call.returncode for call in calls] == [0, 0, 0, 0], results
    keys = {json.loads(out)["AccessKeyId"] for out, _ in results}
    assert len(keys) == 1 and cached["credentials"]["AccessKeyId"] not in keys
    # The login is still alive: the chain was never presented twice.
    refreshed = user.run("credential-process", "--profile", "par", "--refresh-before", "86400")
    assert refreshed.returncode == 0, refreshed.stderr
