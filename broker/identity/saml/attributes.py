"""AWS's SAML attributes and the trust-policy keys other attributes become.

AWS names its attributes exactly and case-sensitively (``https://aws.amazon.com/SAML/
Attributes/Role``, ``RoleSessionName``, ``SessionDuration``, ``SourceIdentity``,
``PrincipalTag:KEY``, ``TransitiveTagKeys``). A name that differs from one only in case is
refused, not ignored: an IdP that sends ``role`` means ``Role``, and silently dropping it
would sign the person in with fewer roles for no visible reason. Values are bounded as STS
bounds them. Attributes are read only from ``AttributeStatement`` children of the verified
assertion; ``Advice`` is never read.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from broker.errors import invalid_token, quoted, rejected_claim
from broker.iam import ContextValue
from broker.identity.saml.xml import SAML
from broker.tags import TagError, validate_tags

AWS_ATTRIBUTES = "https://aws.amazon.com/SAML/Attributes/"
ROLE = AWS_ATTRIBUTES + "Role"
ROLE_SESSION_NAME = AWS_ATTRIBUTES + "RoleSessionName"
SESSION_DURATION = AWS_ATTRIBUTES + "SessionDuration"
SOURCE_IDENTITY = AWS_ATTRIBUTES + "SourceIdentity"
PRINCIPAL_TAG = AWS_ATTRIBUTES + "PrincipalTag:"
TRANSITIVE_TAG_KEYS = AWS_ATTRIBUTES + "TransitiveTagKeys"
_AWS_NAMES = (ROLE, ROLE_SESSION_NAME, SESSION_DURATION, SOURCE_IDENTITY, TRANSITIVE_TAG_KEYS)

_ROLE_ARN = re.compile(
    r"arn:aws:iam::([0-9]{12}):role/(?:[\x21-\x7e]{0,510}/)?[\w+=,.@-]{1,64}", re.ASCII
)
PROVIDER_ARN = re.compile(r"arn:aws:iam::([0-9]{12}):saml-provider/([\w.-]{1,128})", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
MAX_ROLE_VALUES = 100
MAX_ATTRIBUTE_VALUES = 1000

_EDU = "urn:oid:1.3.6.1.4.1.5923."
CONTEXT_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        **{
            f"{_EDU}1.1.1.{n}": f"saml:{key}"
            for n, key in (
                (1, "edupersonaffiliation"),
                (2, "edupersonnickname"),
                (3, "edupersonorgdn"),
                (4, "edupersonorgunitdn"),
                (5, "edupersonprimaryaffiliation"),
                (6, "edupersonprincipalname"),
                (7, "edupersonentitlement"),
                (8, "edupersonprimaryorgunitdn"),
                (9, "edupersonscopedaffiliation"),
                (10, "edupersontargetedid"),
                (11, "edupersonassurance"),
            )
        },
        **{
            f"{_EDU}1.2.1.{n}": f"saml:{key}"
            for n, key in (
                (2, "eduorghomepageuri"),
                (3, "eduorgidentityauthnpolicyuri"),
                (4, "eduorglegalname"),
                (5, "eduorgsuperioruri"),
                (6, "eduorgwhitepagesuri"),
            )
        },
        "urn:oid:2.5.4.3": "saml:cn",
        "urn:oid:2.5.4.4": "saml:surname",
        "urn:oid:2.5.4.41": "saml:name",
        "urn:oid:2.5.4.42": "saml:givenName",
        "urn:oid:2.5.4.45": "saml:x500UniqueIdentifier",
        "urn:oid:0.9.2342.19200300.100.1.1": "saml:uid",
        "urn:oid:0.9.2342.19200300.100.1.3": "saml:mail",
    }
)
"""Attribute name (URN) -> trust-policy key, as AWS maps them; friendly names also map."""
_FRIENDLY_CONTEXT = MappingProxyType(
    {
        **{key.removeprefix("saml:").lower(): key for key in CONTEXT_ATTRIBUTES.values()},
        "mail": "saml:mail",
        "uid": "saml:uid",
        "cn": "saml:cn",
        "sn": "saml:surname",
        "givenname": "saml:givenName",
    }
)


@dataclass(frozen=True)
class SamlRole:
    """One ``Role`` attribute value: a role and the provider allowed to assume it."""

    role_arn: str
    provider_arn: str


def read_attributes(
    assertion: etree._Element,
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(every attribute by Name, the AWS ones), from AttributeStatements of the assertion only."""
    merged: dict[str, list[str]] = {}
    aws: dict[str, tuple[str, ...]] = {}
    total = 0
    for statement in assertion.findall(f"{{{SAML}}}AttributeStatement"):
        for attribute in statement:
            if attribute.tag == f"{{{SAML}}}EncryptedAttribute":
                raise invalid_token("Encrypted attributes are not supported.")
            if attribute.tag != f"{{{SAML}}}Attribute":
                continue
            name = attribute.get("Name") or ""
            aws_name = _aws_name(name)
            values: list[str] = []
            for value in attribute.findall(f"{{{SAML}}}AttributeValue"):
                if len(value) > 0:
                    if aws_name:
                        raise rejected_claim(f"The {quoted(name)} attribute values must be text.")
                    continue
                values.append(str(value.text or ""))
            total += len(values)
            if total > MAX_ATTRIBUTE_VALUES:
                raise invalid_token(
                    f"The assertion has more than {MAX_ATTRIBUTE_VALUES} attribute values."
                )
            if aws_name:
                if name in aws:
                    raise rejected_claim(f"The {quoted(name)} attribute appears more than once.")
                aws[name] = tuple(values)
            merged.setdefault(name, []).extend(values)
    if (
        ROLE not in aws
        and assertion.find(f".//{{{SAML}}}Advice//{{{SAML}}}Attribute[@Name='{ROLE}']") is not None
    ):
        raise rejected_claim("The Role attribute is only inside Advice, which is never read.")
    return {name: tuple(values) for name, values in merged.items()}, aws


def _aws_name(name: str) -> bool:
    """True for AWS's attribute names; refuses names that differ from one only in case."""
    if not name.lower().startswith(AWS_ATTRIBUTES.lower()):
        return False
    if name in _AWS_NAMES or (name.startswith(PRINCIPAL_TAG) and len(name) > len(PRINCIPAL_TAG)):
        return True
    folded = name.lower()
    if any(folded == known.lower() for known in _AWS_NAMES) or folded.startswith(
        PRINCIPAL_TAG.lower()
    ):
        raise rejected_claim(
            f"The attribute {quoted(name)} differs from AWS's name only in case; "
            "AWS attribute names are case-sensitive."
        )
    return False


def roles_of(values: tuple[str, ...], provider_arns: Collection[str]) -> tuple[SamlRole, ...]:
    """The Role values that name one of ``provider_arns``; refused when none does."""
    if len(values) > MAX_ROLE_VALUES:
        raise rejected_claim(f"The Role attribute has more than {MAX_ROLE_VALUES} values.")
    roles: list[SamlRole] = []
    for value in values:
        parts = value.split(",")
        if len(parts) != 2:
            raise rejected_claim(
                f"Role value {quoted(value)} must be a role ARN and a SAML provider ARN, "
                "separated by a comma."
            )
        role_arn, provider_arn = (parts[1], parts[0]) if ":saml-provider/" in parts[0] else parts
        role_match = _ROLE_ARN.fullmatch(role_arn)
        provider_match = PROVIDER_ARN.fullmatch(provider_arn)
        if role_match is None or provider_match is None:
            raise rejected_claim(f"Role value {quoted(value)} does not hold well-formed ARNs.")
        if role_match.group(1) != provider_match.group(1):
            raise rejected_claim(
                f"Role value {quoted(value)} pairs a role with a provider of another account."
            )
        if provider_arn in provider_arns:
            role = SamlRole(role_arn=role_arn, provider_arn=provider_arn)
            if role not in roles:
                roles.append(role)
    if not roles:
        names = ", ".join(sorted(provider_arns))
        raise rejected_claim(f"The assertion's Role attribute names no role for {names}.")
    return tuple(roles)


def _single(aws: Mapping[str, tuple[str, ...]], name: str) -> str | None:
    values = aws.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise rejected_claim(
            f"The {name.removeprefix(AWS_ATTRIBUTES)} attribute must have exactly one value."
        )
    return values[0]


def session_name(aws: Mapping[str, tuple[str, ...]]) -> str | None:
    value = _single(aws, ROLE_SESSION_NAME)
    if value is not None and not _SESSION_NAME.fullmatch(value):
        raise rejected_claim(
            f"RoleSessionName must be 2 to 64 of letters, digits and +=,.@_- (got {quoted(value)})."
        )
    return value


def session_duration(aws: Mapping[str, tuple[str, ...]]) -> int | None:
    value = _single(aws, SESSION_DURATION)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{3,5}", value, re.ASCII) or not 900 <= int(value) <= 43200:
        raise rejected_claim(f"SessionDuration must be 900 to 43200 seconds (got {quoted(value)}).")
    return int(value)


def source_identity(aws: Mapping[str, tuple[str, ...]]) -> str | None:
    value = _single(aws, SOURCE_IDENTITY)
    if value is not None and (
        not _SESSION_NAME.fullmatch(value) or value.lower().startswith("aws:")
    ):
        raise rejected_claim(
            "SourceIdentity must be 2 to 64 of letters, digits and +=,.@_- and must not start "
            "with aws:."
        )
    return value


def session_tags(aws: Mapping[str, tuple[str, ...]]) -> tuple[dict[str, str], tuple[str, ...]]:
    """``PrincipalTag:KEY`` attributes and ``TransitiveTagKeys``, held to AWS's Tag rules
    (:func:`broker.tags.validate_tags`): a refusal is the IdP's claim, ``IDPRejectedClaim``."""
    tags = {
        name.removeprefix(PRINCIPAL_TAG): _single(aws, name) or ""
        for name in aws
        if name.startswith(PRINCIPAL_TAG)
    }
    transitive = aws.get(TRANSITIVE_TAG_KEYS, ())
    try:
        validate_tags(tags, transitive)
    except TagError as exc:
        raise rejected_claim(f"Session tags from the assertion: {exc}") from None
    return tags, tuple(transitive)


def context_attributes(attributes: Mapping[str, tuple[str, ...]]) -> dict[str, ContextValue]:
    collected: dict[str, list[str]] = {}
    for name, values in attributes.items():
        key = CONTEXT_ATTRIBUTES.get(name) or _FRIENDLY_CONTEXT.get(name.lower())
        if key is not None and values:
            collected.setdefault(key, []).extend(values)
    return {
        key: values[0] if len(values) == 1 else tuple(values) for key, values in collected.items()
    }
