"""What a provider's claims become before anything reads them: the ``claims:`` section.

Identity providers disagree on shapes: Keycloak nests roles under ``realm_access`` and
``resource_access``, some send ``groups`` as one comma-separated string, Entra ID leaves
``groups`` out of large tokens. These settings say, per OIDC or SAML provider, how its
claims are normalised once, after verification, into the view that mapping rules, trust
policy condition keys and templates all read (:mod:`broker.identity.claims`). Claims are
addressed by RFC 6901 JSON pointers (``/realm_access/roles``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, model_validator

from broker.config.base import ConfigModel
from broker.config.fields import Checked, as_string, fail, text_field
from broker.tags import TagError, validate_tags

POINTER = r"(?:/(?:[^/~\x00-\x1f\x7f]|~[01])*){1,32}"
"""An RFC 6901 pointer to a member: ``/name``, ``/a/b``; ``~1`` is ``/`` and ``~0`` is ``~``
(RFC 6901 section 3). At most 32 levels; control characters are refused."""

Pointer = Annotated[
    str,
    text_field(
        POINTER,
        "must be a JSON pointer (RFC 6901) such as /groups or /realm_access/roles, "
        "with ~1 for / and ~0 for ~ inside a name",
        flags=re.DOTALL,
    ),
]
Separator = Annotated[
    str, text_field(r"[^\x00-\x1f\x7f]{1,8}", "separators are 1-8 printable characters")
]
ClaimRef = Annotated[
    str,
    text_field(
        rf"[\x21-\x2e\x30-\x7e][\x21-\x7e]{{0,127}}|{POINTER}",
        "must be a claim name (1-128 printable ASCII characters) or a JSON pointer "
        "(RFC 6901) such as /realm_access/roles",
        flags=re.DOTALL,
    ),
]
"""A claim by name (``email``, ``cognito:roles``) or, starting with ``/``, by JSON pointer."""
ClaimName = Annotated[
    str, text_field(r"[\x21-\x7e]{1,128}", "claim names are 1-128 printable ASCII characters")
]
KeycloakClient = Annotated[
    str, text_field(r"[\x21-\x7e]{1,255}", "client IDs are 1-255 printable ASCII characters")
]


class KeycloakRolesConfig(ConfigModel):
    """Keycloak's roles as one flat list claim.

    Keycloak puts realm roles at ``/realm_access/roles`` and each client's roles at
    ``/resource_access/CLIENT/roles``. This writes them into one top-level list claim
    (``into``, default ``roles``): realm roles as they are, the roles of each listed client
    as ``CLIENT:ROLE`` (oauth2-proxy's spelling), so one rule or condition reads them all.
    """

    clients: list[KeycloakClient] = Field(default_factory=list, max_length=20)
    into: ClaimName = "roles"


class ClaimsConfig(ConfigModel):
    """A provider's normalisers, applied in this order: ``split``, then ``keycloak_roles``.

    Whatever is configured, a token that says some of its claims are held elsewhere
    (OpenID Connect distributed claims, ``_claim_names``, or Entra ID's ``hasgroups``
    groups overage) is refused with what to configure instead: the broker does not fetch
    claims, and reading such a token as "no groups" would grant or deny on a claim that
    is not there.
    """

    split: dict[Pointer, Separator] = Field(default_factory=dict, max_length=32)
    """Claim -> separator: a string claim becomes the list of its parts (trimmed, empty
    parts dropped); in a list (a SAML attribute always is one), each string is split."""
    keycloak_roles: KeycloakRolesConfig | None = None


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class ClaimPart:
    """``${claim:/pointer}``: the claim's value; a list is joined with ``join``."""

    pointer: str
    join: str = ":"


@dataclass(frozen=True)
class CapturePart:
    """``${name}``: a named group of the Regex rule that chose the role."""

    name: str


TemplatePart = str | ClaimPart | CapturePart
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_CAPTURE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def parse_template(text: str) -> tuple[TemplatePart, ...]:
    """The parts of a template; raises :class:`ValueError` saying what is wrong.

    Grammar: literal text, ``${claim:POINTER}`` (RFC 6901, without ``}`` or ``|``),
    ``${claim:POINTER|join:SEP}`` (how a list claim is joined, ``:`` by default: it is
    allowed in tag values) and ``${NAME}`` for a Regex rule's named group. In the config
    file ``${VAR}`` is environment substitution, so a group is written ``$${NAME}`` there.
    """
    parts: list[TemplatePart] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        body = match.group(1)
        if body.startswith("claim:"):
            pointer, bar, modifier = body.removeprefix("claim:").partition("|")
            if not re.fullmatch(POINTER, pointer, re.DOTALL):
                raise ValueError(
                    f"${{claim:...}} needs a JSON pointer such as /email (got {body!r})"
                )
            join = ":"
            if bar:
                if not modifier.startswith("join:") or len(modifier) > 13:
                    raise ValueError(
                        f"the only modifier is |join:SEP (1-8 characters), got {modifier!r}"
                    )
                join = modifier.removeprefix("join:")
            parts.append(ClaimPart(pointer=pointer, join=join))
        elif _CAPTURE.fullmatch(body):
            parts.append(CapturePart(name=body))
        else:
            raise ValueError(
                f"${{{body}}} is neither ${{claim:/pointer}} nor ${{name}} of a Regex group"
            )
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    if "${" in "".join(p for p in parts if isinstance(p, str)):
        raise ValueError("an unclosed ${ ... }")
    return tuple(parts)


def _template(value: object) -> str:
    text = as_string(value)
    if not 1 <= len(text) <= 1024 or re.search(r"[\x00-\x1f\x7f]", text):
        raise fail("templates are 1-1024 printable characters")
    try:
        parse_template(text)
    except ValueError as exc:
        raise fail(str(exc)) from None
    return text


Template = Annotated[str, Checked(_template, {"type": "string", "maxLength": 1024})]
TagKey = Annotated[
    str,
    text_field(
        r"[\w\s.:/=+\-@]{1,128}",
        "tag keys are 1-128 letters, digits, spaces and _.:/=+-@",
        flags=re.DOTALL,
    ),
]


class SessionTemplates(ConfigModel):
    """Session tags, ``SourceIdentity`` and ``RoleSessionName`` made from claims.

    Under an OIDC or SAML provider they apply on every path its identities take
    (``AssumeRoleWithWebIdentity``/``WithSAML``, browser sign-in, identity pools); under an
    identity pool, to that pool's sessions, where a Regex rule's named groups may be used
    too. What can be checked here is (the number of tags, keys, transitive keys, the
    literal text); what depends on the claims is checked per request, and a template
    that yields nothing refuses the request rather than making an empty tag.
    """

    tags: dict[TagKey, Template] = Field(default_factory=dict)
    transitive_tag_keys: list[TagKey] = Field(default_factory=list)
    source_identity: Template | None = None
    role_session_name: Template | None = None
    """Identity pools only (elsewhere the caller or the sign-in names the session)."""

    @model_validator(mode="after")
    def _aws_limits(self) -> SessionTemplates:
        try:
            validate_tags(dict.fromkeys(self.tags, ""), self.transitive_tag_keys)
        except TagError as exc:
            raise fail(exc.message) from None
        for what, template, pattern, limit in (
            *((f"tags.{k}", v, r"[\w\s.:/=+\-@]*", 256) for k, v in self.tags.items()),
            ("source_identity", self.source_identity, r"[\w+=,.@-]*", 64),
            ("role_session_name", self.role_session_name, r"[\w+=,.@-]*", 64),
        ):
            if template is None:
                continue
            literal = "".join(p for p in parse_template(template) if isinstance(p, str))
            if not re.fullmatch(pattern, literal) or len(literal) > limit:
                raise fail(
                    f"{what}: the text around the placeholders must fit AWS's rules "
                    f"(at most {limit} characters of {pattern[1:-2]})"
                )
        return self


class ProviderSessionTemplates(SessionTemplates):
    """:class:`SessionTemplates` under an OIDC or SAML provider: no ``role_session_name``
    (the API's caller or the sign-in names the session there)."""

    @model_validator(mode="after")
    def _no_session_name(self) -> ProviderSessionTemplates:
        for template in (*self.tags.values(), self.source_identity):
            if template is not None and any(
                isinstance(part, CapturePart) for part in parse_template(template)
            ):
                raise fail(
                    "${name} stands for a Regex rule's group, and only identity pools have "
                    "rules; use ${claim:/pointer} here"
                )
        if self.role_session_name is not None:
            raise fail(
                "role_session_name is set per identity pool; on the STS API the caller names "
                "the session, and browser sign-in uses login.providers.NAME.oidc."
                "session_name_claim"
            )
        return self
