"""The runtime view of the configured principals: built once at start-up, read per request.

The config file is written for people; the directory is indexed for the hot path: access
key -> user, ARN -> role, and every policy already parsed, so a request never parses a
configured policy or scans a list. Building it is also where IAM grammar mistakes in the
config are reported, with the file, line and key path of each wrong element.

:func:`policy_grammar` finds the same mistakes in the file's raw data, before (and
whatever) the schema says, so ``check-config`` reports them beside schema and cross-key
mistakes instead of only once those are fixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from broker.config import BrokerConfig, ConfigError, KeyPath, UpstreamVia
from broker.iam import MalformedPolicyError, Policy, PolicyKind, parse_policy, policy_problems
from broker.ids import unique_id


@dataclass(frozen=True)
class MfaDevice:
    serial: str
    secret: bytes


@dataclass(frozen=True)
class User:
    account: str
    name: str
    path: str
    arn: str
    user_id: str
    policies: tuple[Policy, ...]
    tags: Mapping[str, str]
    mfa_devices: Mapping[str, MfaDevice]


@dataclass(frozen=True)
class Role:
    account: str
    name: str
    path: str
    arn: str
    role_id: str
    max_session_duration: int
    trust_policy: Policy
    policies: tuple[Policy, ...]
    tags: Mapping[str, str]
    description: str = ""
    """The config's ``description``, shown by the role picker."""
    upstream: UpstreamVia | None = None
    """How an upstream account's sessions are obtained from real AWS; None for a role the
    broker's own STS serves."""


@dataclass(frozen=True)
class AccessKey:
    user: User
    secret: str
    active: bool


class Directory:
    """Indexes over the config; immutable after :meth:`build`."""

    def __init__(
        self,
        *,
        keys: dict[str, AccessKey],
        users: dict[str, User],
        roles: dict[str, Role],
        managed: dict[str, Policy],
        aliases: dict[str, str],
    ) -> None:
        self.keys = keys
        self.users = users
        """By user ARN."""
        self.roles = roles
        """By exact role ARN, path included, as IAM requires of ``RoleArn``."""
        self.managed = managed
        """By policy ARN (``arn:aws:iam::aws:policy/NAME``)."""
        self.aliases = aliases

    def role(self, arn: str) -> Role | None:
        return self.roles.get(arn)

    def managed_policy(self, arn: str) -> Policy | None:
        return self.managed.get(arn)

    @classmethod
    def build(cls, config: BrokerConfig) -> Directory:
        """Index and parse everything; raise one ConfigError listing every bad policy."""
        problems: list[ConfigError] = []

        def parse(
            doc: Mapping[str, Any], kind: PolicyKind, name: str, path: tuple[str | int, ...]
        ) -> Policy:
            try:
                return parse_policy(doc, kind=kind, name=name)
            except MalformedPolicyError as exc:
                problems.extend(
                    ConfigError.problem(config, (*path, *p.path), _malformed(p.reason))
                    for p in exc.problems
                )
                return Policy(name=name, version=None, statements=())  # reported, never used

        managed: dict[str, Policy] = {}
        for name, doc in config.managed_policies.items():
            managed[f"arn:aws:iam::aws:policy/{name}"] = parse(
                doc, "identity", name, ("managed_policies", name)
            )

        keys: dict[str, AccessKey] = {}
        users: dict[str, User] = {}
        roles: dict[str, Role] = {}
        aliases: dict[str, str] = {}
        for account_id, account in config.accounts.items():
            if account.alias:
                aliases[account_id] = account.alias
            for user_name, user in account.users.items():
                base = ("accounts", account_id, "users", user_name)
                policies = [
                    parse(doc, "identity", pname, (*base, "policies", pname))
                    for pname, doc in user.policies.items()
                ]
                policies += [managed[f"arn:aws:iam::aws:policy/{m}"] for m in user.managed_policies]
                arn = f"arn:aws:iam::{account_id}:user{user.path}{user_name}"
                entry = User(
                    account=account_id,
                    name=user_name,
                    path=user.path,
                    arn=arn,
                    user_id=unique_id("AIDA", account_id, user.path, user_name),
                    policies=tuple(policies),
                    tags=dict(user.tags),
                    mfa_devices={
                        d.serial: MfaDevice(serial=d.serial, secret=d.totp_secret_bytes())
                        for d in user.mfa_devices
                    },
                )
                users[arn] = entry
                for key in user.access_keys:
                    keys[key.id] = AccessKey(
                        user=entry,
                        secret=key.secret.get_secret_value(),
                        active=key.status == "Active",
                    )
            for role_name, role in account.roles.items():
                base = ("accounts", account_id, "roles", role_name)
                policies = [
                    parse(doc, "identity", pname, (*base, "policies", pname))
                    for pname, doc in role.policies.items()
                ]
                policies += [managed[f"arn:aws:iam::aws:policy/{m}"] for m in role.managed_policies]
                arn = f"arn:aws:iam::{account_id}:role{role.path}{role_name}"
                roles[arn] = Role(
                    account=account_id,
                    name=role_name,
                    path=role.path,
                    arn=arn,
                    role_id=unique_id("AROA", account_id, role.path, role_name),
                    max_session_duration=role.max_session_duration,
                    trust_policy=parse(
                        role.trust_policy,
                        "trust",
                        f"{role_name} trust policy",
                        (*base, "trust_policy"),
                    ),
                    policies=tuple(policies),
                    tags=dict(role.tags),
                    description=role.description,
                    upstream=account.upstream.via if account.upstream is not None else None,
                )
        if problems:
            raise ConfigError([p for err in problems for p in err.problems])
        return cls(keys=keys, users=users, roles=roles, managed=managed, aliases=aliases)


def _malformed(reason: str) -> str:
    return f"malformed policy: {reason}"


def policy_grammar(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Every IAM grammar mistake in the file's policies, at the path of the wrong element.

    Runs on the raw (substituted) file data, so a schema mistake elsewhere hides nothing
    here. Tolerant like the cross-checks: a policy that is not a mapping or a JSON string
    is the schema's to report, and is skipped.
    """
    found: list[tuple[KeyPath, str]] = []
    for path, kind, document in _policy_documents(data):
        if isinstance(document, str):
            try:
                json.loads(document)
            except ValueError:
                continue  # the schema says "is a string but not JSON"
        elif not isinstance(document, Mapping):
            continue
        found += [
            ((*path, *p.path), _malformed(p.reason)) for p in policy_problems(document, kind=kind)
        ]
    return found


def _policy_documents(data: Mapping[str, Any]) -> Iterator[tuple[KeyPath, PolicyKind, object]]:
    """Where the file holds policies, and their kinds (as :meth:`Directory.build` reads them)."""
    for name, document in _mapping(data.get("managed_policies")).items():
        yield ("managed_policies", name), "identity", document
    for account_id, account in _mapping(data.get("accounts")).items():
        for section in ("users", "roles"):
            for name, principal in _mapping(_mapping(account).get(section)).items():
                base: KeyPath = ("accounts", account_id, section, name)
                entry = _mapping(principal)
                if section == "roles" and "trust_policy" in entry:
                    yield (*base, "trust_policy"), "trust", entry["trust_policy"]
                for policy, document in _mapping(entry.get("policies")).items():
                    yield (*base, "policies", policy), "identity", document


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
