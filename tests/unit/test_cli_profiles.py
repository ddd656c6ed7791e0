"""Editing the AWS shared files for ``sts-broker login``: only our keys in our sections
change; comments, other profiles and other keys survive byte for byte."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

from broker.client.profiles import (
    forget_static_keys,
    process_command,
    profile_name,
    remove_section,
    set_section,
    write_profiles,
)
from broker.client.settings import (
    Settings,
    SettingsError,
    load_settings,
    save_settings,
    settings_path,
)

USER_FILE = """\
# managed by hand; keep this comment
[default]
region = eu-west-1

; prod profiles below
[profile dev]
region = us-east-1
credential_process = old-tool
  --with-a-continuation-line
output = json
[profile other]
x = 1
"""


def test_keys_are_replaced_in_place_and_everything_else_is_kept() -> None:
    edited = set_section(USER_FILE, "profile dev", {"credential_process": "new", "services": "s"})
    assert edited == USER_FILE.replace(
        "credential_process = old-tool\n  --with-a-continuation-line\noutput = json\n",
        "credential_process = new\noutput = json\nservices = s\n",
    )


def test_a_missing_section_is_appended_and_a_nested_value_written_indented() -> None:
    edited = set_section(
        USER_FILE, "services sts-broker-dev", {"sts": "\nendpoint_url = https://b"}
    )
    assert edited.startswith(USER_FILE)
    assert edited.endswith("\n[services sts-broker-dev]\nsts =\n  endpoint_url = https://b\n")
    again = set_section(edited, "services sts-broker-dev", {"sts": "\nendpoint_url = https://c"})
    assert again == edited.replace("https://b", "https://c")


def test_section_names_match_as_botocore_reads_them() -> None:
    text = "[ profile   dev ]  # spaced\nregion = x\n"
    assert set_section(text, "profile dev", {"a": "b"}) == text + "a = b\n"
    assert set_section("", "default", {"a": "b"}) == "[default]\na = b\n"
    assert set_section("no newline at end", "x", {"a": "b"}) == "no newline at end\n\n[x]\na = b\n"


def test_values_that_would_break_the_file_are_refused() -> None:
    with pytest.raises(ValueError, match="INI"):
        set_section("", "profile x", {"credential_process": "a\n[profile evil]"})


def test_write_profiles_respects_the_aws_file_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, credentials = tmp_path / "c" / "config", tmp_path / "c" / "credentials"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    credentials.parent.mkdir()
    credentials.write_text("[work]\naws_access_key_id = AKIAOLD\n")
    credentials.chmod(0o644)
    keys = {"AccessKeyId": "ASIA1", "SecretAccessKey": "s3cret", "SessionToken": "tok"}
    warnings = write_profiles("work", "https://broker.example", keys, "eu-central-1")
    assert len(warnings) == 1 and "[work] section" in warnings[0]
    parsed = configparser.ConfigParser()
    parsed.read([config])
    assert parsed["profile work"]["credential_process"] == process_command("work")
    assert parsed["profile work"]["region"] == "eu-central-1"
    assert parsed["profile work-static"]["region"] == "eu-central-1"
    assert parsed["profile work-static"]["services"] == "sts-broker-work"
    assert parsed["services sts-broker-work"]["sts"].split() == [
        "endpoint_url",
        "=",
        "https://broker.example",
    ]
    creds = configparser.ConfigParser()
    creds.read([credentials])
    assert creds["work-static"]["aws_session_token"] == "tok"
    assert creds["work"]["aws_access_key_id"] == "AKIAOLD"  # not ours: untouched
    assert os.stat(config).st_mode & 0o777 == 0o600
    assert os.stat(credentials).st_mode & 0o777 == 0o600  # it holds keys now
    assert forget_static_keys("work") is True
    assert credentials.read_text() == "[work]\naws_access_key_id = AKIAOLD\n\n"
    assert forget_static_keys("work") is False


def test_login_all_writes_only_the_refreshing_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    keys = {"AccessKeyId": "ASIA1", "SecretAccessKey": "s3cret", "SessionToken": "tok"}
    write_profiles("dev-Dev", "https://b", keys, "us-east-1", static=False)
    assert config.read_text() == (
        f"[profile dev-Dev]\ncredential_process = {process_command('dev-Dev')}\n"
        "region = us-east-1\nservices = sts-broker-dev-Dev\n\n"
        "[services sts-broker-dev-Dev]\nsts =\n  endpoint_url = https://b\n"
    )
    assert not credentials.exists()


def test_remove_section_keeps_the_comment_of_the_next_one() -> None:
    text = "[a]\nx = 1\n\n# about b\n[b]\ny = 2\n[c]\n"
    assert remove_section(text, "a") == "# about b\n[b]\ny = 2\n[c]\n"
    assert remove_section(text, "b") == "[a]\nx = 1\n\n# about b\n[c]\n"
    assert remove_section(text, "c") == "[a]\nx = 1\n\n# about b\n[b]\ny = 2\n"
    assert remove_section(text, "nope") == text


@pytest.mark.parametrize(
    ("alias", "arn", "name"),
    [
        ("dev", "arn:aws:iam::111111111111:role/ReadOnly", "dev-ReadOnly"),
        ("", "arn:aws:iam::222222222222:role/ops/Deploy", "222222222222-Deploy"),
        ("prod", "arn:aws:iam::222222222222:role/a+b=c,d@e", "prod-a_b_c_d_e"),
    ],
)
def test_profile_names_come_from_alias_and_role(alias: str, arn: str, name: str) -> None:
    assert profile_name(alias, arn) == name


def test_settings_live_under_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STS_BROKER_CLI_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert settings_path() == tmp_path / "home" / ".config" / "sts-broker" / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the spec: absolute only
    assert settings_path() == tmp_path / "home" / ".config" / "sts-broker" / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert settings_path() == tmp_path / "xdg" / "sts-broker" / "config"
    assert load_settings() == Settings()  # no file yet
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("# mine\n[default]\nregion = eu-west-1\nother = kept\n")
    save_settings(Settings(broker="https://broker.example", region="eu-west-2"))
    assert path.read_text() == (
        "# mine\n[default]\nregion = eu-west-2\nother = kept\nbroker = https://broker.example\n"
    )
    assert os.stat(path).st_mode & 0o777 == 0o644  # kept: it holds no secret
    assert load_settings() == Settings(broker="https://broker.example", region="eu-west-2")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[default]\nbroker = http://broker.example\n", "must use https"),
        ("[default]\nregion = Mars\n", "'Mars' is not an AWS region name"),
        ("[default]\nprovider = Corp SSO\n", "is not a login provider name"),
        ("[default]\njust words\n", ":2: not a 'key = value' line"),
    ],
)
def test_bad_settings_say_which_file_and_why(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(SettingsError, match=reason) as caught:
        load_settings(path)
    assert str(caught.value).startswith(str(path))
