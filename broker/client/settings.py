"""What ``sts-broker configure`` remembers, so ``login`` needs no ``--broker`` every time.

One small INI file, ``$XDG_CONFIG_HOME/sts-broker/config`` (``~/.config/sts-broker/config``
when ``XDG_CONFIG_HOME`` is unset or relative, as the XDG base directory spec says),
``STS_BROKER_CLI_CONFIG`` naming another file::

    [default]
    broker = https://broker.example.com
    region = eu-west-1
    provider = corp

It holds no secret (those live in the cache, :mod:`broker.client.cache`), but it decides
where refresh tokens are sent, so it is written like the AWS files: edited in place (other
keys and comments kept, :func:`broker.client.profiles.set_section`), atomically, ``0600``.
Command-line options always win over it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from broker.client.api import broker_url
from broker.client.profiles import read_text, set_section, write_text

SECTION = "default"
REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}", re.ASCII)
PROVIDER = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}", re.ASCII)
"""A login provider's name, as the broker's ``/login/NAME`` accepts it."""
_LINE = re.compile(r"\s*([A-Za-z_]+)\s*[=:]\s*(.*?)\s*")
_HEADER = re.compile(r"\s*\[\s*([^\]]*?)\s*\]\s*")


class SettingsError(Exception):
    """The settings file, or a value for it, is unusable; the message says which and why."""


def settings_path() -> Path:
    """Where the settings live (see module doc)."""
    named = os.environ.get("STS_BROKER_CLI_CONFIG")
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "sts-broker" / "config"


@dataclass(frozen=True)
class Settings:
    """The saved defaults; "" for each one not set."""

    broker: str = ""
    region: str = ""
    provider: str = ""


def check_region(value: str) -> str:
    if not REGION.fullmatch(value):
        raise SettingsError(f"{value!r} is not an AWS region name like us-east-1")
    return value


def check_provider(value: str) -> str:
    if not PROVIDER.fullmatch(value):
        raise SettingsError(
            f"{value!r} is not a login provider name (lowercase letters, digits, _ and -)"
        )
    return value


def load_settings(path: Path | None = None) -> Settings:
    """The saved defaults (all "" when there is no file); SettingsError for a bad value."""
    path = path or settings_path()
    values: dict[str, str] = {}
    section = ""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip()[:1] in "#;":
            continue
        header = _HEADER.fullmatch(line)
        if header:
            section = header.group(1)
            continue
        entry = _LINE.fullmatch(line)
        if entry is None:
            raise SettingsError(f"{path}:{number}: not a 'key = value' line")
        if section == SECTION:
            values[entry.group(1).lower()] = entry.group(2)
    try:
        return Settings(
            broker=broker_url(values["broker"]) if values.get("broker") else "",
            region=check_region(values["region"]) if values.get("region") else "",
            provider=check_provider(values["provider"]) if values.get("provider") else "",
        )
    except ValueError as exc:
        raise SettingsError(f"{path}: broker: {exc}") from None
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the non-empty values into ``[default]``, keeping everything else in the file."""
    path = path or settings_path()
    values = {
        key: value
        for key, value in (
            ("broker", settings.broker),
            ("region", settings.region),
            ("provider", settings.provider),
        )
        if value
    }
    write_text(path, set_section(read_text(path), SECTION, values))
    return path
