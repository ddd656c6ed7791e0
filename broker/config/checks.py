"""Rules that span the config file: what no single field can know about the others.

They run on the raw (substituted) data, not on the validated models, so they report beside
the field errors of the same run instead of only after those are fixed, and they tolerate
malformed parts (pydantic reports those).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from broker.config.fields import (
    MFA_SERIAL,
    KeyPath,
    format_key_path,
    infer_oidc_kind,
    oidc_arn_path,
)
from broker.config.state_url import TLS_SCHEMES
from broker.loopback import is_loopback_host


def cross_checks(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Rules that span the file. Tolerant of malformed parts: pydantic reports those."""
    found: list[tuple[KeyPath, str]] = []
    seen: dict[str, dict[str, KeyPath]] = {}

    def unique(what: str, value: str, at: KeyPath) -> None:
        first = seen.setdefault(what, {}).setdefault(value, at)
        if first != at:
            found.append((at, f"{what} {value!r} is already used at {format_key_path(first)}"))

    for at, key_id in _strings_in(data.get("token_keys"), "id", ("token_keys",)):
        unique("token key ID", key_id, at)
    found.extend(_login_checks(data))
    found.extend(_upstream_checks(data))
    redis = _dict_or_empty(data.get("redis"))
    state = data.get("state")
    if redis.get("tls_ca_file") is not None and not (
        isinstance(state, str) and state.partition("://")[0] in TLS_SCHEMES
    ):
        found.append(
            (
                ("redis", "tls_ca_file"),
                "is set, but state is not a TLS Redis URL (rediss:// or valkeys://)",
            )
        )
    found.extend(_pool_checks(data))
    demo = _dict_or_empty(data.get("demo"))
    public_url = data.get("public_url")
    if any(demo.get(k) is True for k in ("saml_idp", "oidc_provider")) and isinstance(
        public_url, str
    ):
        host = urlsplit(public_url).hostname or ""
        if not is_loopback_host(host):
            found.append(
                (
                    ("demo",),
                    "the demo IdPs sign in whoever clicks; they run only on a loopback "
                    f"public_url (this one's host is {host!r})",
                )
            )
    managed = data.get("managed_policies", {})
    defined = set(managed) if isinstance(managed, dict) else None
    for account_id, account in _dict_or_empty(data.get("accounts")).items():
        base: KeyPath = ("accounts", account_id)
        alias = _dict_or_empty(account).get("alias")
        if isinstance(alias, str):
            unique("account alias", alias, (*base, "alias"))
        providers = _dict_or_empty(account).get("oidc_providers")
        for at, url in _strings_in(providers, "url", (*base, "oidc_providers")):
            # Same ARN, same provider: http/https or a trailing slash don't make a second one.
            unique(f"OIDC provider in account {account_id}", oidc_arn_path(url), at)
        for kind in ("users", "roles"):
            for name, principal in _dict_or_empty(_dict_or_empty(account).get(kind)).items():
                where: KeyPath = (*base, kind, name)
                refs = _list_or_empty(_dict_or_empty(principal).get("managed_policies"))
                for i, ref in enumerate(refs):
                    if isinstance(ref, str) and defined is not None and ref not in defined:
                        reason = f"managed policy {ref!r} is not defined in managed_policies"
                        found.append(((*where, "managed_policies", i), reason))
                keys = _dict_or_empty(principal).get("access_keys")
                for at, key_id in _strings_in(keys, "id", (*where, "access_keys")):
                    unique("access key ID", key_id, at)
                devices = _dict_or_empty(principal).get("mfa_devices")
                for at, serial in _strings_in(devices, "serial", (*where, "mfa_devices")):
                    unique("MFA serial", serial, at)
                    match = re.fullmatch(MFA_SERIAL, serial, re.ASCII)
                    if match and match.group(1) != account_id:
                        other = match.group(1)
                        found.append(
                            (at, f"MFA device must be in account {account_id}, not {other}")
                        )
    return found


def _login_checks(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Each login provider must name something the accounts define, or it could sign no one in."""
    found: list[tuple[KeyPath, str]] = []
    accounts = _dict_or_empty(data.get("accounts"))
    for name, provider in _dict_or_empty(
        _dict_or_empty(data.get("login")).get("providers")
    ).items():
        at: KeyPath = ("login", "providers", name)
        saml = _dict_or_empty(_dict_or_empty(provider).get("saml"))
        account, saml_name = saml.get("account"), saml.get("provider")
        if isinstance(account, str) and isinstance(saml_name, str):
            defined = _dict_or_empty(_dict_or_empty(accounts.get(account)).get("saml_providers"))
            if saml_name not in defined:
                found.append(
                    (
                        (*at, "saml", "provider"),
                        f"account {account} has no saml_providers entry {saml_name!r}",
                    )
                )
        oidc = _dict_or_empty(_dict_or_empty(provider).get("oidc"))
        url, client_id = oidc.get("url"), oidc.get("client_id")
        if isinstance(url, str) and isinstance(client_id, str):
            trusted = any(
                isinstance(p, dict)
                and isinstance(p.get("url"), str)
                and oidc_arn_path(p["url"]) == oidc_arn_path(url)
                and client_id in _list_or_empty(p.get("client_ids"))
                for a in accounts.values()
                for p in _list_or_empty(_dict_or_empty(a).get("oidc_providers"))
            )
            if not trusted:
                found.append(
                    (
                        (*at, "oidc", "client_id"),
                        f"no account's oidc_providers lists {url} with this client ID, so no "
                        "role could trust its users; add it to client_ids there",
                    )
                )
    return found


_UPSTREAM_ROLE_KEYS = {
    "policies": "permission policies",
    "managed_policies": "managed policies",
    "tags": "tags",
}


def _upstream_checks(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """An upstream account's principals and permissions live in AWS: the broker holds only
    its roles' names, the trust policies it decides with, and their maximum durations.
    Anything more would read as if it applied, and would not."""
    found: list[tuple[KeyPath, str]] = []
    for account_id, account in _dict_or_empty(data.get("accounts")).items():
        entry = _dict_or_empty(account)
        if not isinstance(entry.get("upstream"), dict):
            continue
        base: KeyPath = ("accounts", account_id)
        if _dict_or_empty(entry.get("users")):
            found.append(
                (
                    (*base, "users"),
                    "an upstream account has no users in the broker: its principals live in "
                    "AWS (remove users, or remove upstream to serve the account locally)",
                )
            )
        if entry.get("outbound_web_identity_federation") is True:
            found.append(
                (
                    (*base, "outbound_web_identity_federation"),
                    "GetWebIdentityToken is for the broker's own principals; an upstream "
                    "account has none",
                )
            )
        for name, role in _dict_or_empty(entry.get("roles")).items():
            for key, what in _UPSTREAM_ROLE_KEYS.items():
                if key in _dict_or_empty(role):
                    found.append(
                        (
                            (*base, "roles", name, key),
                            f"the {what} of an upstream role live on the role in AWS; the "
                            "broker keeps only trust_policy, max_session_duration, path and "
                            "description",
                        )
                    )
    return found


COGNITO_IDENTITY_PATH = "cognito-identity.amazonaws.com"


def _pool_checks(data: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Each identity pool names only what its account defines, and its IDs are unique."""
    found: list[tuple[KeyPath, str]] = []
    first: dict[str, KeyPath] = {}
    for account_id, raw_account in _dict_or_empty(data.get("accounts")).items():
        account = _dict_or_empty(raw_account)
        pools = _dict_or_empty(account.get("identity_pools"))
        base: KeyPath = ("accounts", account_id)
        logins = _account_logins(account_id, account)
        roles = _role_arns(account_id, account)
        if pools and COGNITO_IDENTITY_PATH in logins:
            found.append(
                (
                    (*base, "identity_pools"),
                    f"an account with identity_pools is itself the {COGNITO_IDENTITY_PATH} "
                    "provider of its pools; remove the oidc_providers entry for it (or move "
                    "the pools to another account)",
                )
            )
        for pool_id, raw_pool in pools.items():
            at: KeyPath = (*base, "identity_pools", pool_id)
            earlier = first.setdefault(pool_id, at)
            if earlier != at:
                found.append(
                    (at, f"identity pool ID is already used at {format_key_path(earlier)}")
                )
            pool = _dict_or_empty(raw_pool)
            listed = [x for x in _list_or_empty(pool.get("logins")) if isinstance(x, str)]
            for index, name in enumerate(listed):
                if name not in logins:
                    found.append(
                        (
                            (*at, "logins", index),
                            f"account {account_id} has no OIDC provider or SAML provider "
                            f"{name!r} (use an oidc_providers URL without https://, "
                            "accounts.google.com for Google, or a SAML provider ARN)",
                        )
                    )
            for key in _dict_or_empty(pool.get("role_mappings")):
                if key not in listed and key.rpartition(":")[0] not in listed:
                    found.append(
                        (
                            (*at, "role_mappings", key),
                            "role mappings are keyed by one of the pool's logins "
                            "(or LOGIN:CLIENT_ID for a user pool app client)",
                        )
                    )
            found.extend(_pool_role_checks(at, pool, account_id, roles))
    return found


def _pool_role_checks(
    at: KeyPath, pool: Mapping[str, Any], account_id: str, roles: set[str]
) -> Iterator[tuple[KeyPath, str]]:
    def check(where: KeyPath, arn: object) -> Iterator[tuple[KeyPath, str]]:
        if isinstance(arn, str) and "${" not in arn and arn not in roles:
            yield where, f"no role {arn} is defined in account {account_id}"

    for kind, arn in _dict_or_empty(pool.get("roles")).items():
        yield from check((*at, "roles", kind), arn)
    for key, mapping in _dict_or_empty(pool.get("role_mappings")).items():
        rules = _dict_or_empty(_dict_or_empty(mapping).get("RulesConfiguration")).get("Rules")
        for index, rule in enumerate(_list_or_empty(rules)):
            where: KeyPath = (*at, "role_mappings", key, "RulesConfiguration", "Rules", index)
            yield from check((*where, "RoleARN"), _dict_or_empty(rule).get("RoleARN"))


def _account_logins(account_id: str, account: Mapping[str, Any]) -> set[str]:
    """The names a pool may list: OIDC providers by host/path, SAML providers by ARN."""
    names: set[str] = set()
    for provider in _list_or_empty(account.get("oidc_providers")):
        url = _dict_or_empty(provider).get("url")
        if not isinstance(url, str):
            continue
        names.add(oidc_arn_path(url))
        kind = _dict_or_empty(provider).get("kind") or infer_oidc_kind(url)
        if kind == "google":
            names.add("accounts.google.com")
    for name in _dict_or_empty(account.get("saml_providers")):
        names.add(f"arn:aws:iam::{account_id}:saml-provider/{name}")
    return names


def _role_arns(account_id: str, account: Mapping[str, Any]) -> set[str]:
    out = set()
    for name, role in _dict_or_empty(account.get("roles")).items():
        path = _dict_or_empty(role).get("path", "/")
        out.add(f"arn:aws:iam::{account_id}:role{path if isinstance(path, str) else '/'}{name}")
    return out


def _strings_in(items: object, field: str, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """(path, value) of ``field`` in each mapping of a list, skipping malformed entries."""
    for index, item in enumerate(_list_or_empty(items)):
        value = _dict_or_empty(item).get(field)
        if isinstance(value, str):
            yield (*path, index, field), value


def _dict_or_empty(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list_or_empty(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
