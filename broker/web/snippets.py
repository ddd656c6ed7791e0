"""The copy-and-paste blocks of the credentials page, quoted for the shell that reads them.

Access keys and session tokens are base64-ish today, so naive quoting would "work"; it is
done properly anyway, because a block a person pastes into a shell is code, and one value
with a quote in it (a future token format, a public URL with ``'``) must not turn into a
command. Each shell gets its own literal-string syntax (no expansion inside):

- POSIX sh/bash/zsh: ``'...'``, a ``'`` written as ``'"'"'``;
- fish: ``'...'``, where only ``\\`` and ``'`` are escaped with ``\\``;
- PowerShell: ``'...'``, a quote doubled (PowerShell also treats the typographic single
  quotes as quotes, so those are doubled too). Double quotes would expand ``$`` and
  backticks;
- the AWS shared files are INI without quoting: a value with a control character is
  refused rather than written, since it would end the line.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_NAMES = (
    ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
    ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
    ("AWS_SESSION_TOKEN", "SessionToken"),
)
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"


def posix_quote(value: str) -> str:
    """A single-quoted sh/bash/zsh word, always quoted."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def fish_quote(value: str) -> str:
    """A single-quoted fish word (fish honours ``\\\\`` and ``\\'`` inside single quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def powershell_quote(value: str) -> str:
    """A verbatim (single-quoted) PowerShell string."""
    return "'" + "".join(c * 2 if c in _PS_QUOTES else c for c in value) + "'"


def ini_value(value: str) -> str:
    """A value for ``~/.aws/credentials`` or ``~/.aws/config``; refuses line breaks."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value != value.strip():
        raise ValueError("value cannot be written to an INI file")
    return value


@dataclass(frozen=True)
class Snippet:
    """One copyable block."""

    id: str
    """The HTML id of the ``<pre>``, which the Copy button names."""
    title: str
    text: str
    hint: str = ""


def credential_snippets(
    credentials: Mapping[str, Any], *, public_url: str, profile: str, role_arn: str
) -> list[Snippet]:
    """Every block of the credentials page for these AssumeRole-shaped ``Credentials``."""
    env = [(name, str(credentials[key])) for name, key in ENV_NAMES]
    env.append(("AWS_ENDPOINT_URL_STS", public_url))
    login = ["sts-broker", "login", "--broker", public_url, "--role", role_arn]
    login += ["--profile", profile]
    ini = {key: ini_value(str(credentials[key])) for _, key in ENV_NAMES}
    return [
        Snippet(
            "bash",
            "bash / zsh",
            "\n".join(f"export {name}={posix_quote(value)}" for name, value in env),
        ),
        Snippet("fish", "fish", "\n".join(f"set -gx {n} {fish_quote(v)}" for n, v in env)),
        Snippet(
            "powershell",
            "PowerShell",
            "\n".join(f"$Env:{name} = {powershell_quote(value)}" for name, value in env),
        ),
        Snippet(
            "credentials-file",
            "~/.aws/credentials",
            f"[{ini_value(profile)}]\n"
            f"aws_access_key_id = {ini['AccessKeyId']}\n"
            f"aws_secret_access_key = {ini['SecretAccessKey']}\n"
            f"aws_session_token = {ini['SessionToken']}",
            f"Then use --profile {profile}; these keys expire with this session.",
        ),
        Snippet(
            "credential-process",
            "~/.aws/config (refreshes itself)",
            f"[profile {ini_value(profile)}]\n"
            f"credential_process = sts-broker credential-process --profile {profile}\n"
            f"endpoint_url = {ini_value(public_url)}",
            "The AWS CLI and SDKs then ask sts-broker for fresh credentials whenever needed.",
        ),
        Snippet(
            "login-command",
            "Once, to set that profile up",
            shlex.join(login),
            "Signs in through this broker in your browser and caches the credentials locally.",
        ),
    ]
