"""Editing the AWS shared files for ``sts-broker login``: only our keys in our sections
change; comments, other profiles and other keys survive byte for byte."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

from broker.client.profiles import process_command, set_section, write_profiles

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
    warnings = write_profiles("work", "https://broker.example", keys)
    assert len(warnings) == 1 and "[work] section" in warnings[0]
    parsed = configparser.ConfigParser()
    parsed.read([config])
    assert parsed["profile work"]["credential_process"] == process_command("work")
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
