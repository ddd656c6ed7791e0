"""Writing the AWS CLI's shared files (``~/.aws/config``, ``~/.aws/credentials``) for a login.

``sts-broker login --profile NAME`` writes two profiles, because one profile cannot be both
(for the same name, botocore reads the credentials file *before* ``credential_process``,
so static keys there would hide the refreshing process for good):

- ``NAME`` in the config file: ``credential_process = <python> -m broker
  credential-process --profile NAME``. The AWS CLI and SDKs ask for credentials whenever
  they need them, and get fresh ones (see :mod:`broker.client.cache`). Use this one.
- ``NAME-static`` in the credentials file: the keys themselves, for tools that cannot run
  a ``credential_process``. They expire with the session and are not refreshed.

Both also get ``region`` (the broker's, or ``--region``: without one the AWS CLI refuses
with "You must specify a region") and ``services = sts-broker-NAME``, a ``[services
sts-broker-NAME]`` section that points STS (only STS) at the broker, so ``aws sts ...
--profile NAME`` needs no ``--endpoint-url`` on botocore versions that read it.

``sts-broker login --all`` writes only the refreshing profile, one per role, named by
:func:`profile_name` (``dev-ReadOnly``: account alias, then role, as Granted and ``aws
sso`` name theirs).

The files are edited, not regenerated: only the keys we own in the sections we own change;
other profiles, other keys of our profiles, comments and blank lines are kept byte for byte
(``configparser`` would drop every comment). Writes are atomic (temporary file, rename),
keep the file's mode (minus group/other access for the credentials file), and create
new files ``0600``.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from broker.client.files import replace_atomically

STATIC_SUFFIX = "-static"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+", re.ASCII)
_HEADER = re.compile(r"\s*\[([^\]]*)\]\s*(?:[#;].*)?")
_KEY = re.compile(r"([^\s=:#;\[][^=:]*?)\s*[=:]")


def ini_value(value: str) -> str:
    """A value for ``~/.aws/credentials`` or ``~/.aws/config``; refuses line breaks.

    The AWS shared files are INI without quoting: a value with a control character would
    end the line and start another key, so it is refused rather than written.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value != value.strip():
        raise ValueError("value cannot be written to an INI file")
    return value


def credentials_path() -> Path:
    """``AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``, as botocore does."""
    return Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()


def config_path() -> Path:
    """``AWS_CONFIG_FILE``, else ``~/.aws/config``, as botocore does."""
    return Path(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()


def _section_name(line: str) -> str | None:
    match = _HEADER.fullmatch(line.rstrip("\r\n"))
    return " ".join(match.group(1).split()) if match else None


def set_section(
    text: str, section: str, values: Mapping[str, str], *, drop: Collection[str] = ()
) -> str:
    """``text`` with ``[section]`` holding ``values`` (a value may span indented lines).

    Existing keys of the section are replaced in place (with their continuation lines),
    missing ones are added at the end of the section, a missing section at the end of the
    file; keys in ``drop`` are removed. Every other line is kept as it was.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _section_name(line) == section), None)
    if start is None:
        block = [f"[{section}]\n", *(_entry(k, v) for k, v in values.items())]
        separator = ["\n"] if lines and lines[-1].strip() else []
        return "".join([*lines, *separator, *block])
    end = next(
        (i for i in range(start + 1, len(lines)) if _section_name(lines[i]) is not None),
        len(lines),
    )
    body = lines[start + 1 : end]
    pending = dict(values)
    out: list[str] = []
    skipping = False
    for line in body:
        key_match = _KEY.match(line)
        if key_match and not line[:1].isspace():
            key = key_match.group(1).strip().lower()
            skipping = key in pending or key in drop
            if skipping:
                if key in pending:
                    out.append(_entry(key, pending.pop(key)))
                continue
        elif skipping and line[:1].isspace() and line.strip():
            continue  # a continuation line of a value we replaced
        else:
            skipping = False
        out.append(line)
    if pending:
        last = len(out)
        while last > 0 and not out[last - 1].strip():
            last -= 1
        out[last:last] = [_entry(k, v) for k, v in pending.items()]
    return "".join([*lines[: start + 1], *out, *lines[end:]])


def remove_section(text: str, section: str) -> str:
    """``text`` without ``[section]`` and its lines (comments above the next section stay
    with that section, since that is what they usually describe)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _section_name(line) == section), None)
    if start is None:
        return text
    end = next(
        (i for i in range(start + 1, len(lines)) if _section_name(lines[i]) is not None),
        len(lines),
    )
    while end > start + 1 and lines[end - 1].lstrip()[:1] in ("#", ";"):
        end -= 1
    return "".join([*lines[:start], *lines[end:]])


def has_section(text: str, section: str) -> bool:
    return any(_section_name(line) == section for line in text.splitlines())


def _entry(key: str, value: str) -> str:
    """``key = value`` lines; a value starting with a newline is a nested block."""
    if value.startswith("\n"):
        nested = [ini_value(part) for part in value[1:].split("\n")]
        return f"{key} =\n" + "".join(f"  {part}\n" for part in nested)
    return f"{key} = {ini_value(value)}\n"


def write_text(path: Path, text: str, *, private: bool = False) -> None:
    """Replace ``path`` atomically, keeping its mode (new files: 0600, in a 0700 dir).

    ``private`` (the credentials file, which now holds our keys) also takes away any
    group/other access the file had: secrets are not written into a readable file.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    if private:
        mode &= 0o700
    replace_atomically(path, text.encode("utf-8"), mode)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def process_command(profile: str) -> str:
    """The ``credential_process`` line: this Python, so it works without sts-broker on PATH."""
    return shlex.join([sys.executable, "-m", "broker", "credential-process", "--profile", profile])


def _profile_section(profile: str) -> str:
    return "default" if profile == "default" else f"profile {profile}"


def profile_name(alias: str, role_arn: str) -> str:
    """``dev-ReadOnly``: the account's alias (else its ID), then the role's name, made safe
    as a profile, file and section name."""
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    role = role_arn.rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", f"{alias or account}-{role}")[:64]


def with_config(
    text: str,
    profile: str,
    sts_endpoint: str | None,
    process: str,
    region: str,
    *,
    static: bool = True,
) -> str:
    """``text`` (a config file) with the profiles' sections and the STS endpoint: the
    refreshing one, and (``static``) the one the credentials file gives keys to.

    ``sts_endpoint`` is the broker for the broker's own credentials; None for real AWS
    credentials (an upstream account's), which must reach AWS's STS, so no ``services``
    section points them elsewhere (and one left by an earlier login is dropped).
    """
    sections = [_profile_section(profile)]
    if static:
        sections.append(_profile_section(f"{profile}{STATIC_SUFFIX}"))
    if sts_endpoint is None:
        for index, section in enumerate(sections):
            own = {"credential_process": process} if index == 0 else {}
            text = set_section(text, section, {**own, "region": region}, drop=("services",))
        return text
    services = f"sts-broker-{profile}"
    common = {"region": region, "services": services}
    for index, section in enumerate(sections):
        own = {"credential_process": process} if index == 0 else {}
        text = set_section(text, section, {**own, **common})
    return set_section(text, f"services {services}", {"sts": f"\nendpoint_url = {sts_endpoint}"})


def with_credentials(text: str, profile: str, credentials: Mapping[str, str]) -> str:
    """``text`` (a credentials file) with the static profile's keys."""
    return set_section(
        text,
        f"{profile}{STATIC_SUFFIX}",
        {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        },
    )


def write_profiles(
    profile: str,
    sts_endpoint: str | None,
    credentials: Mapping[str, str],
    region: str,
    *,
    static: bool = True,
) -> list[str]:
    """Write the profiles (see module doc); returns warnings to show the user."""
    config = with_config(
        read_text(config_path()),
        profile,
        sts_endpoint,
        process_command(profile),
        region,
        static=static,
    )
    write_text(config_path(), config)
    creds_text = read_text(credentials_path())
    if static:
        creds_text = with_credentials(creds_text, profile, credentials)
        write_text(credentials_path(), creds_text, private=True)
    warnings = []
    if has_section(creds_text, profile):
        warnings.append(
            f"{credentials_path()} has a [{profile}] section: the AWS CLI reads it before "
            f"credential_process, so profile {profile!r} will use those keys. Remove that "
            "section to get refreshing credentials."
        )
    return warnings


def forget_static_keys(profile: str) -> bool:
    """Remove ``[NAME-static]`` (the keys ``login`` wrote) from the credentials file;
    False when it has none. The config file's profiles stay: they say what to run again."""
    text = read_text(credentials_path())
    section = f"{profile}{STATIC_SUFFIX}"
    if not has_section(text, section):
        return False
    write_text(credentials_path(), remove_section(text, section), private=True)
    return True
