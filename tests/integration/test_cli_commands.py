"""The CLI commands around ``login`` as people use them: ``configure``, ``login --all``,
``exec``, ``env``, ``logout`` and ``list``, each a real process against a live broker, the
browser step driven with httpx, and the real AWS CLI using what they wrote."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.cli_setup import (
    OPS,
    READER,
    READER_SESSION,
    CliBroker,
    CliHome,
    approval_form,
    logged_in,
    read_until,
    url_in,
)
from tests.integration.conftest import DEV, free_port

OPS_SESSION = f"arn:aws:sts::{DEV}:assumed-role/CliOps/alice@example.com"


@pytest.fixture
def user(user: CliHome) -> CliHome:
    """What a fresh machine has: no region anywhere but in the profiles the CLI writes."""
    user.env.pop("AWS_DEFAULT_REGION")
    return user


def _approve_all(cli: CliBroker, url: str) -> str:
    """Sign in from the CLI's ``--all`` URL, check the page offers every role, approve."""
    with cli.browser() as browser:
        page = cli.sign_in_from(browser, url)
        assert page.status_code == 200, page.text
        assert 'class="roles cli-all-roles"' in page.text
        assert READER in page.text and OPS in page.text
        assert 'type="radio"' not in page.text
        approved = browser.post("/cli/authorize", data=approval_form(page.text))
        assert approved.status_code == 303, approved.text
        return browser.get(approved.headers["location"]).text


def test_configure_then_login_all_writes_a_profile_per_role(cli: CliBroker, user: CliHome) -> None:
    done = user.run("configure", "--broker", cli.url, "--provider", "corp")
    assert done.returncode == 0, done.stderr
    settings = user.xdg_config / "sts-broker" / "config"
    assert settings.read_text() == f"[default]\nbroker = {cli.url}\nprovider = corp\n"
    assert f"Saved to {settings}." in done.stderr
    assert "sts-broker login --all" in done.stderr

    proc = user.start("login", "--all")  # no --broker, no --provider: configured
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    assert "all_roles=1" in url and "provider=corp" in url
    assert "Return to your terminal" in _approve_all(cli, url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == ""
    assert "2 profiles written (refreshing, credential_process):" in err
    assert f"  dev-CliOps     {OPS}\n  dev-CliReader  {READER}\n" in err
    assert "Next:\n  aws sts get-caller-identity --profile dev-CliOps\n" in err

    config = user.config_file.read_text()
    for profile in ("dev-CliOps", "dev-CliReader"):
        assert f"[profile {profile}]\ncredential_process = " in config
        assert f"region = us-east-1\nservices = sts-broker-{profile}\n" in config
        assert f"[profile {profile}-static]" not in config
    assert not user.credentials_file.exists()  # --all writes no static keys
    # No region and no endpoint in the environment: the profiles carry both.
    assert "AWS_DEFAULT_REGION" not in user.env and "AWS_REGION" not in user.env
    assert user.caller("dev-CliReader") == READER_SESSION
    assert user.caller("dev-CliOps") == OPS_SESSION
    # Each role has its own refresh chain.
    assert user.cache("dev-CliOps")["refresh_token"] != user.cache("dev-CliReader")["refresh_token"]


def test_configure_asks_when_given_no_option(cli: CliBroker, user: CliHome) -> None:
    proc = user.run("configure", stdin=f"{cli.url}\neu-west-1\n\n")
    assert proc.returncode == 0, proc.stderr
    assert "Broker URL: Default region (empty: the broker's): Login provider" in proc.stderr
    settings = user.xdg_config / "sts-broker" / "config"
    assert settings.read_text() == f"[default]\nbroker = {cli.url}\nregion = eu-west-1\n"
    # A second run shows the saved values; an empty answer keeps them.
    again = user.run("configure", stdin="\n\ncorp\n")
    assert f"Broker URL [{cli.url}]: " in again.stderr
    assert settings.read_text().endswith("region = eu-west-1\nprovider = corp\n")


def test_device_login_all(cli: CliBroker, user: CliHome) -> None:
    proc = user.start("login", "--broker", cli.url, "--provider", "corp", "--all", "--no-browser")
    said = read_until(proc, "Waiting for you to approve")
    complete = url_in(said, f"{cli.url}/cli/device?user_code=")
    with cli.browser() as browser:
        page = cli.sign_in_from(browser, complete)
        assert 'class="roles cli-all-roles"' in page.text and OPS in page.text
        done = browser.post("/cli/device/approve", data=approval_form(page.text))
        assert done.status_code == 200 and READER in done.text and OPS in done.text
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert user.caller("dev-CliOps") == OPS_SESSION


def test_exec_runs_the_command_with_fresh_credentials(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "work")
    before = user.cache("work")
    # Less than exec's 15 minutes left: exec refreshes before handing the keys over.
    soon = dict(before)
    soon["credentials"] = {**before["credentials"], "Expiration": _in_minutes(5)}
    user.cache_file("work").write_text(json.dumps(soon))
    user.env["AWS_PROFILE"] = "some-other-profile"  # would override the keys: removed
    show = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if 'AWS' in k or k == 'STS_BROKER_PROFILE'}))"  # noqa: E501
    done = user.run("exec", "--profile", "work", "--", sys.executable, "-c", show)
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout)
    after = user.cache("work")["credentials"]
    assert after["AccessKeyId"] != before["credentials"]["AccessKeyId"]
    assert env == {
        "AWS_CONFIG_FILE": user.env["AWS_CONFIG_FILE"],
        "AWS_SHARED_CREDENTIALS_FILE": user.env["AWS_SHARED_CREDENTIALS_FILE"],
        "AWS_ACCESS_KEY_ID": after["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": after["SecretAccessKey"],
        "AWS_SESSION_TOKEN": after["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": after["Expiration"],
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_STS": cli.url,
        "STS_BROKER_PROFILE": "work",
    }
    # The real AWS CLI under exec: keys, region and endpoint all from exec's environment.
    aws = str(Path(sys.executable).parent / "aws")
    called = user.run("exec", "--profile", "work", "--", aws, "sts", "get-caller-identity")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["Arn"] == READER_SESSION
    # The command's exit status is exec's; a missing command is 127.
    failed = user.run("exec", "--profile", "work", "--", sys.executable, "-c", "exit(3)")
    assert failed.returncode == 3
    missing = user.run("exec", "--profile", "work", "--", "no-such-command-here")
    assert missing.returncode == 127
    assert "sts-broker exec: command not found: no-such-command-here" in missing.stderr
    nothing = user.run("exec", "--profile", "work")
    assert nothing.returncode == 2 and "give the command to run" in nothing.stderr


def test_env_prints_each_shells_syntax_and_bash_evals_it(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "shell")
    creds = user.cache("shell")["credentials"]
    names = [
        ("AWS_ACCESS_KEY_ID", creds["AccessKeyId"]),
        ("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"]),
        ("AWS_SESSION_TOKEN", creds["SessionToken"]),
        ("AWS_CREDENTIAL_EXPIRATION", creds["Expiration"]),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_STS", cli.url),
        ("STS_BROKER_PROFILE", "shell"),
    ]
    expected = {
        "bash": "".join(f"export {n}='{v}'\n" for n, v in names),
        "fish": "".join(f"set -gx {n} '{v}'\n" for n, v in names),
        "powershell": "".join(f"$Env:{n} = '{v}'\n" for n, v in names),
    }
    for shell, text in expected.items():
        done = user.run("env", "--profile", "shell", "--shell", shell)
        assert done.returncode == 0, done.stderr
        assert done.stdout == text
    # Without --shell, $SHELL decides.
    user.env["SHELL"] = "/usr/bin/fish"
    assert user.run("env", "--profile", "shell").stdout == expected["fish"]
    user.env["SHELL"] = "/bin/zsh"
    assert user.run("env", "--profile", "shell").stdout == expected["bash"]
    # eval in a real bash, then the real AWS CLI with nothing else set.
    aws = str(Path(sys.executable).parent / "aws")
    script = f'eval "$("{sys.executable}" -m broker env --profile shell)" && "{aws}" sts '
    script += "get-caller-identity"
    done = user.execute(["bash", "-c", script])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == READER_SESSION


def test_logout_revokes_the_refresh_grant_and_deletes_the_cache(
    cli: CliBroker, user: CliHome
) -> None:
    logged_in(cli, user, "leaving")
    logged_in(cli, user, "staying", role=OPS)
    refresh = user.cache("leaving")["refresh_token"]
    assert "[leaving-static]" in user.credentials_file.read_text()
    done = user.run("logout", "--profile", "leaving")
    assert done.returncode == 0, done.stderr
    assert "Logged out of leaving: the broker revoked its refresh token; cache deleted." in (
        done.stderr
    )
    assert not user.cache_file("leaving").exists()
    assert "[leaving-static]" not in user.credentials_file.read_text()
    assert "[staying-static]" in user.credentials_file.read_text()
    # The broker refuses the revoked refresh token.
    refused = cli.token(grant_type="refresh_token", refresh_token=refresh)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "this login was revoked",
    }
    # The other login is untouched; the logged-out profile says what to do.
    assert user.caller("staying") == OPS_SESSION
    gone = user.run("credential-process", "--profile", "leaving")
    assert gone.returncode == 1 and "no cached login for profile 'leaving'" in gone.stderr
    again = user.run("logout", "--profile", "leaving")
    assert again.returncode == 1 and "profile 'leaving' is not logged in" in again.stderr

    staying = user.cache("staying")["refresh_token"]
    every = user.run("logout", "--all")
    assert every.returncode == 0, every.stderr
    assert cli.token(grant_type="refresh_token", refresh_token=staying).status_code == 400
    assert user.run("list").stderr == "No cached logins. Run: sts-broker login\n"


def test_logout_from_an_unreachable_broker_says_so(cli: CliBroker, user: CliHome) -> None:
    logged_in(cli, user, "offline")
    cached = user.cache("offline")
    dead = f"http://127.0.0.1:{free_port()}"
    user.cache_file("offline").write_text(json.dumps({**cached, "broker": dead}))
    done = user.run("logout", "--profile", "offline")
    assert done.returncode == 1
    assert (
        f"warning: could not revoke at the broker (cannot reach the broker at {dead}: "
        "connection refused)"
    ) in done.stderr
    assert "its refresh token stays valid until" in done.stderr
    assert not user.cache_file("offline").exists()


def test_list_shows_cached_logins(cli: CliBroker, user: CliHome) -> None:
    assert user.run("list").stderr == "No cached logins. Run: sts-broker login\n"
    logged_in(cli, user, "one")
    logged_in(cli, user, "two", role=OPS)
    expired = user.cache("two")
    expired["credentials"]["Expiration"] = "2020-01-01T00:00:00Z"
    user.cache_file("two").write_text(json.dumps(expired))
    done = user.run("list")
    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()
    assert header.split() == ["PROFILE", "ROLE", "EXPIRES", "REFRESHES", "UNTIL", "BROKER"]
    one = user.cache("one")
    assert first.split()[:3] == ["one", READER, one["credentials"]["Expiration"]]
    assert "(in 59 min)" in first or "(in 1 h 00 min)" in first
    assert first.split()[-1] == cli.url
    assert second.split()[:4] == ["two", OPS, "2020-01-01T00:00:00Z", "(expired)"]
    assert one["credentials"]["SecretAccessKey"] not in done.stdout


def test_an_unreachable_broker_is_named_with_the_reason(user: CliHome) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = user.run("login", "--broker", dead, "--no-browser")
    assert done.returncode == 1
    assert (
        done.stderr == f"sts-broker login: cannot reach the broker at {dead}: connection refused\n"
    )
    none = user.run("login")
    assert none.returncode == 2
    assert "which broker? Run sts-broker configure --broker URL once" in none.stderr


def test_the_revoke_endpoint_follows_rfc_7009(cli: CliBroker) -> None:
    # Unknown and malformed tokens are not an error: nothing tells a guesser what exists.
    for token in ("A" * 43, "junk"):
        done = httpx.post(f"{cli.url}/cli/revoke", data={"token": token})
        assert (done.status_code, done.json()) == (200, {})
        assert done.headers["cache-control"] == "no-store"
    missing = httpx.post(f"{cli.url}/cli/revoke", data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    # A revoked chain stays dead: its tokens refuse, including one rotated before.
    with cli.signed_in() as browser:
        body = cli.redeem(browser)
    rotated = cli.token(grant_type="refresh_token", refresh_token=body["refresh_token"]).json()
    revoked = httpx.post(f"{cli.url}/cli/revoke", data={"token": rotated["refresh_token"]})
    assert (revoked.status_code, revoked.json()) == (200, {})
    late = cli.token(grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert late.json()["error_description"] == "this login was revoked"


def _in_minutes(minutes: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + minutes * 60))
