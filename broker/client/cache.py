"""The CLI's credential cache: ``~/.aws/sts-broker/cache/PROFILE.json``, and its refresh.

The file holds live credentials and a refresh token, so it is treated like an SSH key:

- the directory is created ``0700``, the file ``0600``, written to a temporary file in the
  same directory and renamed over the old one, so a reader never sees half a file and a
  crash never leaves one;
- it is refused, not "fixed", when it is readable or writable by anyone but its owner, or
  owned by another user, or a symlink, or when its directory is not ours alone (on every
  read, not only on writes): such a file may have been read already, or planted. The
  message says how to recover (``chmod 600`` or log in again);
- refreshes are serialised with an ``flock`` on ``PROFILE.lock``, and the cache is re-read
  under the lock: two ``credential_process`` calls at once (parallel tools, the AWS CLI's
  own retries) must not both present the same refresh token, since the broker treats a
  second presentation as theft and revokes the login.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.client import api
from broker.client.files import replace_atomically

PROFILE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
"""Profile names: safe as a file name and as an INI section name."""
DEFAULT_REFRESH_BEFORE = 300
DEFAULT_PROFILE = "sts-broker"
"""The profile every command uses without ``--profile``."""


class CacheError(Exception):
    """The cache cannot give credentials; the message says what to do."""


def valid_profile(name: str) -> bool:
    return PROFILE.fullmatch(name) is not None and name not in (".", "..")


def cache_dir() -> Path:
    return Path.home() / ".aws" / "sts-broker" / "cache"


def parse_time(value: str) -> float:
    """ISO 8601 (``2026-11-29T09:42:01Z``) -> epoch seconds; ValueError when it is not."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class CachedLogin:
    """One profile's login: where it came from, its credentials, how to refresh them."""

    broker: str
    role_arn: str
    credentials: dict[str, str]
    """``AccessKeyId``, ``SecretAccessKey``, ``SessionToken``, ``Expiration`` (ISO 8601)."""
    refresh_token: str = ""
    refresh_expires_at: str = ""
    duration: int | None = None
    region: str = ""
    """The profile's region (the broker's, or ``--region``): ``exec`` and ``env`` set it."""
    upstream: Mapping[str, str] | None = None
    """For real AWS credentials (an upstream account's role): AWS's ``FederationEndpoint``
    and ``ConsoleUrl``, where ``console`` signs in; None for the broker's own credentials."""

    @property
    def sts_endpoint(self) -> str | None:
        """Where STS is for these credentials: the broker, or None (AWS's own)."""
        return None if self.upstream is not None else self.broker

    @property
    def expires_at(self) -> float:
        return parse_time(self.credentials["Expiration"])

    def process_output(self) -> dict[str, Any]:
        """What ``credential_process`` prints (the AWS CLI's documented format)."""
        return {"Version": 1, **{k: self.credentials[k] for k in api.CREDENTIAL_FIELDS}}

    @classmethod
    def from_token(
        cls, broker: str, body: dict[str, Any], duration: int | None, region: str
    ) -> CachedLogin:
        """From a ``/cli/token`` answer (already checked by :func:`api.token`)."""
        refresh = body.get("refresh_token")
        refresh_ends = body.get("refresh_expires_at")
        return cls(
            broker=broker,
            role_arn=str(body.get("RoleArn", "")),
            credentials={k: str(body[k]) for k in api.CREDENTIAL_FIELDS},
            refresh_token=refresh if isinstance(refresh, str) else "",
            refresh_expires_at=refresh_ends if isinstance(refresh_ends, str) else "",
            duration=duration,
            region=region,
            upstream=_upstream(body.get("Upstream")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "Version": 1,
            "broker": self.broker,
            "role_arn": self.role_arn,
            "credentials": self.credentials,
            "refresh_token": self.refresh_token,
            "refresh_expires_at": self.refresh_expires_at,
            "duration": self.duration,
            "region": self.region,
            "upstream": None if self.upstream is None else dict(self.upstream),
        }

    @classmethod
    def from_json(cls, value: object) -> CachedLogin | None:
        if not isinstance(value, dict) or value.get("Version") != 1:
            return None
        creds = value.get("credentials")
        broker, role = value.get("broker"), value.get("role_arn")
        refresh, refresh_ends = value.get("refresh_token", ""), value.get("refresh_expires_at", "")
        duration, region = value.get("duration"), value.get("region", "")
        if not isinstance(creds, dict) or not all(
            isinstance(creds.get(k), str) for k in api.CREDENTIAL_FIELDS
        ):
            return None
        if not all(isinstance(v, str) for v in (broker, role, refresh, refresh_ends, region)):
            return None
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
            return None
        return cls(
            broker=str(broker),
            role_arn=str(role),
            credentials={k: str(creds[k]) for k in api.CREDENTIAL_FIELDS},
            refresh_token=str(refresh),
            refresh_expires_at=str(refresh_ends),
            duration=duration,
            region=str(region),
            upstream=_upstream(value.get("upstream")),
        )


def _upstream(value: object) -> dict[str, str] | None:
    """The token answer's (or cache's) ``Upstream`` object, checked; None when absent."""
    if not isinstance(value, dict):
        return None
    endpoints = {k: value.get(k) for k in ("FederationEndpoint", "ConsoleUrl")}
    if not all(
        isinstance(v, str) and v.startswith(("https://", "http://")) for v in endpoints.values()
    ):
        return None
    return {k: str(v) for k, v in endpoints.items()}


class CredentialCache:
    """Read, write and refresh cached logins under one directory (default :func:`cache_dir`)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or cache_dir()

    def path(self, profile: str) -> Path:
        if not valid_profile(profile):
            raise CacheError(f"invalid profile name {profile!r} (use letters, digits, _ . -)")
        return self.directory / f"{profile}.json"

    # ------------------------------------------------------------------ files

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._check_dir()

    def _check_dir(self) -> None:
        info = self.directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise CacheError(f"{self.directory} is not a directory owned by you; remove it")
        if info.st_mode & 0o022:
            raise CacheError(
                f"{self.directory} is writable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                f"run: chmod 700 {self.directory}"
            )

    def save(self, profile: str, login: CachedLogin) -> Path:
        """Write atomically with mode 0600 (see module doc)."""
        target = self.path(profile)
        self._ensure_dir()
        data = json.dumps(login.to_json(), indent=2).encode("utf-8")
        replace_atomically(target, data, 0o600)
        return target

    def load(self, profile: str) -> CachedLogin:
        """The cached login; CacheError when missing, unsafe or unreadable.

        The directory is checked too, not only on writes: whoever owns it can rename
        files in it, and so swap one profile's credentials for another's.
        """
        target = self.path(profile)
        try:
            self._check_dir()
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise CacheError(
                f"no cached login for profile {profile!r}; run: sts-broker login --profile "
                f"{profile} (or sts-broker list to see the cached ones)"
            ) from None
        except OSError as exc:
            raise CacheError(f"cannot open {target}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid():
                raise CacheError(f"{target} is owned by another user; refusing to use it")
            if stat.S_IMODE(info.st_mode) & 0o077:
                raise CacheError(
                    f"{target} is accessible by other users (mode "
                    f"{stat.S_IMODE(info.st_mode):o}), so its credentials may have leaked; "
                    f"refusing to use it. Run sts-broker login again (or chmod 600 it)"
                )
            raw = handle.read(1_000_000)
        try:
            login = CachedLogin.from_json(json.loads(raw))
        except ValueError:
            login = None
        if login is None:
            raise CacheError(f"{target} is not a valid sts-broker cache; run sts-broker login")
        return login

    def profiles(self) -> list[str]:
        """The profiles with a cache file, sorted (nothing when there is no cache yet)."""
        try:
            self._check_dir()
        except FileNotFoundError:
            return []
        return sorted(
            path.stem
            for path in self.directory.glob("*.json")
            if valid_profile(path.stem) and not path.is_symlink()
        )

    def delete(self, profile: str) -> bool:
        """Remove the profile's cache (and its lock file); False when there was none."""
        target = self.path(profile)
        try:
            self._check_dir()
        except FileNotFoundError:
            return False
        (self.directory / f"{profile}.lock").unlink(missing_ok=True)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        return True

    @contextmanager
    def _locked(self, profile: str) -> Iterator[None]:
        self._ensure_dir()
        fd = os.open(self.directory / f"{profile}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ refresh

    def fresh(self, profile: str, *, refresh_before: float, now: float) -> CachedLogin:
        """Credentials valid for at least ``refresh_before`` seconds more, refreshing if needed.

        When refreshing fails but the cached credentials are still valid, they are returned
        (with a warning on stderr): they work, and the next call tries again. Expired
        credentials are never returned: CacheError instead.
        """
        login = self.load(profile)
        if login.expires_at - now >= refresh_before:
            return login
        with self._locked(profile):
            login = self.load(profile)  # another process may have refreshed meanwhile
            if login.expires_at - now >= refresh_before:
                return login
            try:
                login = self._refresh(profile, login)
            except api.BrokerError as exc:
                if login.expires_at - now > 0:
                    print(
                        f"sts-broker: could not refresh ({exc}); using the cached "
                        "credentials until they expire",
                        file=sys.stderr,
                    )
                    return login
                raise CacheError(_refresh_failed(profile, login, exc)) from None
        return login

    def _refresh(self, profile: str, login: CachedLogin) -> CachedLogin:
        if not login.refresh_token:
            raise api.BrokerError("invalid_grant", "this login has no refresh token")
        body = api.token(
            login.broker, {"grant_type": "refresh_token", "refresh_token": login.refresh_token}
        )
        refreshed = CachedLogin.from_token(login.broker, body, login.duration, login.region)
        if refreshed.role_arn != login.role_arn:
            raise api.BrokerError("bad_response", "the broker refreshed another role")
        self.save(profile, refreshed)
        return refreshed


def _refresh_failed(profile: str, login: CachedLogin, exc: api.BrokerError) -> str:
    if exc.error == "invalid_grant":
        why = "the browser sign-in behind it ended or was revoked"
    elif exc.error == api.UNREACHABLE:
        why = exc.description
    else:
        why = str(exc)
    return (
        f"the credentials of profile {profile!r} expired and cannot be refreshed ({why}); "
        f"run sts-broker login --broker {login.broker} --profile {profile} again"
    )
