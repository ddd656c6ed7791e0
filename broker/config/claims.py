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
from typing import Annotated

from pydantic import Field

from broker.config.base import ConfigModel
from broker.config.fields import text_field

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
