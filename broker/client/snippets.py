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
- the AWS shared files are written by :mod:`broker.client.profiles`, the very code
  ``sts-broker login`` writes them with.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from broker.client.profiles import STATIC_SUFFIX, with_config, with_credentials

ENV_NAMES = (
    ("AWS_ACCESS_KEY_ID", "AccessKeyId"),
    ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"),
    ("AWS_SESSION_TOKEN", "SessionToken"),
)
_PS_QUOTES = "'\u2018\u2019\u201a\u201b"
Shell = Literal["posix", "fish", "powershell"]
SHELL_NAMES: dict[str, Shell] = {
    "sh": "posix",
    "bash": "posix",
    "zsh": "posix",
    "posix": "posix",
    "fish": "fish",
    "powershell": "powershell",
    "pwsh": "powershell",
}
"""What ``--shell`` accepts, and the syntax each name means."""


def posix_quote(value: str) -> str:
    """A single-quoted sh/bash/zsh word, always quoted."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def fish_quote(value: str) -> str:
    """A single-quoted fish word (fish honours ``\\\\`` and ``\\'`` inside single quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def powershell_quote(value: str) -> str:
    """A verbatim (single-quoted) PowerShell string."""
    return "'" + "".join(c * 2 if c in _PS_QUOTES else c for c in value) + "'"


def shell_lines(env: Sequence[tuple[str, str]], shell: Shell) -> str:
    """``env`` as lines that set (and export) each variable in ``shell``."""
    if shell == "fish":
        return "\n".join(f"set -gx {name} {fish_quote(value)}" for name, value in env)
    if shell == "powershell":
        return "\n".join(f"$Env:{name} = {powershell_quote(value)}" for name, value in env)
    return "\n".join(f"export {name}={posix_quote(value)}" for name, value in env)


def credential_env(
    credentials: Mapping[str, Any], *, region: str, sts_endpoint: str | None
) -> list[tuple[str, str]]:
    """The environment variables the AWS CLI and SDKs read credentials from, in order:
    the keys, their expiry, the region (both names: SDKs differ) and, for the broker's own
    credentials, the broker as STS (real AWS keys, ``sts_endpoint`` None, keep AWS's)."""
    env = [(name, str(credentials[key])) for name, key in ENV_NAMES]
    env.append(("AWS_CREDENTIAL_EXPIRATION", str(credentials["Expiration"])))
    if region:
        env += [("AWS_REGION", region), ("AWS_DEFAULT_REGION", region)]
    if sts_endpoint is not None:
        env.append(("AWS_ENDPOINT_URL_STS", sts_endpoint))
    return env


def shell_of(name: str | None) -> Shell:
    """``--shell``'s syntax: as given, else from ``$SHELL`` (fish or PowerShell, else POSIX)."""
    if name:
        return SHELL_NAMES[name]
    login_shell = os.path.basename(os.environ.get("SHELL", ""))
    return SHELL_NAMES.get(login_shell, "posix")


@dataclass(frozen=True)
class Snippet:
    """One copyable block."""

    id: str
    """The HTML id of the ``<pre>``, which the Copy button names."""
    title: str
    text: str
    hint: str = ""
    group: str = ""
    """``shells`` for the three shell blocks, which the page shows one at a time."""


def credential_snippets(
    credentials: Mapping[str, Any],
    *,
    public_url: str,
    profile: str,
    role_arn: str,
    region: str,
    upstream: bool = False,
) -> list[Snippet]:
    """Every block of the credentials page for these AssumeRole-shaped ``Credentials``.

    The two AWS files get exactly the layout ``sts-broker login --profile NAME`` writes
    (:mod:`broker.client.profiles`, ``docs/cli.md``), so pasting them and running the login
    command later agree instead of fighting: the keys go to ``[NAME-static]`` (a
    ``[NAME]`` in the credentials file would hide the refreshing ``credential_process``
    profile for good), and STS is pointed at the broker by a ``[services ...]`` section,
    not a profile-wide ``endpoint_url`` that would send every other service there too.
    Only ``credential_process`` differs: the CLI writes the Python that ran it, which this
    page cannot know, so it names ``sts-broker`` on ``PATH``. For an ``upstream`` role the
    keys are AWS's own: nothing points STS at the broker.
    """
    sts_endpoint = None if upstream else public_url
    env = [(name, str(credentials[key])) for name, key in ENV_NAMES]
    env.append(("AWS_REGION", region))
    if sts_endpoint is not None:
        env.append(("AWS_ENDPOINT_URL_STS", sts_endpoint))
    login = ["sts-broker", "login", "--broker", public_url, "--role", role_arn]
    login += ["--profile", profile]
    keys = {key: str(credentials[key]) for _, key in ENV_NAMES}
    static = f"{profile}{STATIC_SUFFIX}"
    process = shlex.join(["sts-broker", "credential-process", "--profile", profile])
    return [
        Snippet("bash", "bash / zsh", shell_lines(env, "posix"), group="shells"),
        Snippet("fish", "fish", shell_lines(env, "fish"), group="shells"),
        Snippet("powershell", "PowerShell", shell_lines(env, "powershell"), group="shells"),
        Snippet(
            "credentials-file",
            "~/.aws/credentials",
            with_credentials("", profile, keys).rstrip("\n"),
            f"Use --profile {static} (with the ~/.aws/config block below"
            + (")." if upstream else ", which sends its STS calls to this broker).")
            + " These keys expire with this session and are not refreshed.",
        ),
        Snippet(
            "config-file",
            "~/.aws/config",
            with_config("", profile, sts_endpoint, process, region).rstrip("\n"),
            f"--profile {profile} refreshes itself: the AWS CLI and SDKs ask sts-broker for "
            "fresh credentials whenever needed, once the command below has set it up.",
        ),
        Snippet(
            "login-command",
            f"Once, to set up the refreshing profile {profile}",
            shlex.join(login),
            "Signs in through this broker in your browser, caches the credentials locally "
            "and writes both files above for you.",
        ),
    ]
