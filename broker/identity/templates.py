"""Session tags, SourceIdentity and RoleSessionName rendered from claims.

The grammar is :func:`broker.config.parse_template`'s (``${claim:/email}``,
``${claim:/groups|join:+}``, ``${name}`` of a Regex rule's group); the config checked what
it could at load time (the tag count, keys, transitive keys, the literal text). What depends
on the claims is checked here, per request, by AWS's rules (:mod:`broker.tags`, the
``SourceIdentity`` and ``RoleSessionName`` patterns), and a placeholder that yields nothing
(the claim is absent, empty or not text) refuses the request with ``IDPRejectedClaim``
naming the output and the claim: an empty tag or a session named ``-`` would be a silent
wrong answer, and the claim's value is never echoed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from broker.config import CapturePart, ClaimPart, SessionTemplates, TemplatePart, parse_template
from broker.errors import rejected_claim
from broker.identity.claims import Claims, parse_pointer
from broker.tags import TagError, validate_tags

_NAME: Final = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
"""AWS's ``SourceIdentity`` and ``RoleSessionName``: 2-64 of ``[\\w+=,.@-]``."""


@dataclass(frozen=True)
class SessionOutputs:
    """What a set of templates made for one identity (empty when nothing is templated)."""

    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str | None = None
    role_session_name: str | None = None


@functools.lru_cache(maxsize=512)
def _parts(template: str) -> tuple[TemplatePart, ...]:
    """Parsed once per distinct template (the config's, so the cache stays small)."""
    return parse_template(template)


def render(template: str, claims: Claims, captures: Mapping[str, str], *, what: str) -> str:
    """``template`` filled from ``claims`` and a Regex rule's ``captures``; refuses
    (``IDPRejectedClaim``) when a placeholder, or the whole, yields nothing."""
    out: list[str] = []
    for part in _parts(template):
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, ClaimPart):
            texts = claims.texts(parse_pointer(part.pointer))
            if not texts or not any(texts):
                raise rejected_claim(
                    f"The {what} template needs the claim {part.pointer}, which this identity "
                    "does not have (or has empty)."
                )
            out.append(part.join.join(t for t in texts if t))
        elif isinstance(part, CapturePart):
            value = captures.get(part.name)
            if not value:
                raise rejected_claim(
                    f"The {what} template needs the Regex group {part.name}, and no Regex rule "
                    "that chose this role filled it."
                )
            out.append(value)
    text = "".join(out)
    if not text:
        raise rejected_claim(f"The {what} template made an empty value.")
    return text


def render_session(
    templates: SessionTemplates, claims: Claims, captures: Mapping[str, str] | None = None
) -> SessionOutputs:
    """Every output of ``templates`` for one identity, checked by AWS's rules."""
    found = captures or {}
    tags = {
        key: render(value, claims, found, what=f"session tag {key!r}")
        for key, value in templates.tags.items()
    }
    try:
        validate_tags(tags, templates.transitive_tag_keys)
    except TagError as exc:
        raise rejected_claim(f"Templated session tags: {exc.message}") from None
    source_identity = _name(templates.source_identity, claims, found, "SourceIdentity")
    if source_identity is not None and source_identity.lower().startswith("aws:"):
        raise rejected_claim("The SourceIdentity template made a value starting with aws:.")
    return SessionOutputs(
        tags=tags,
        transitive_tag_keys=tuple(templates.transitive_tag_keys),
        source_identity=source_identity,
        role_session_name=_name(templates.role_session_name, claims, found, "RoleSessionName"),
    )


def _name(
    template: str | None, claims: Claims, captures: Mapping[str, str], what: str
) -> str | None:
    if template is None:
        return None
    text = render(template, claims, captures, what=what)
    if not _NAME.fullmatch(text):
        raise rejected_claim(
            f"The {what} template made a value AWS does not accept: it must be 2-64 of "
            "letters, digits and +=,.@_- (a list claim joins with ':' unless the template "
            "says |join:+ or similar)."
        )
    return text


def merged_tags(
    claimed: Mapping[str, str],
    claimed_transitive: tuple[str, ...],
    outputs: SessionOutputs,
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Tags from a token or assertion together with templated ones; a key in both refuses
    (the two sources would disagree on what the session says)."""
    folded = {key.lower() for key in claimed}
    clash = next((key for key in outputs.tags if key.lower() in folded), None)
    if clash is not None:
        raise rejected_claim(
            f"Session tag {clash!r} comes both from the identity provider and from a template; "
            "remove one of them."
        )
    tags = {**claimed, **outputs.tags}
    transitive = (*claimed_transitive, *outputs.transitive_tag_keys)
    try:
        validate_tags(tags, transitive)
    except TagError as exc:
        raise rejected_claim(f"Session tags: {exc.message}") from None
    return tags, transitive


def merged_source_identity(claimed: str | None, outputs: SessionOutputs) -> str | None:
    """The provider's SourceIdentity or the templated one; both at once refuses."""
    if claimed is not None and outputs.source_identity is not None:
        raise rejected_claim(
            "SourceIdentity comes both from the identity provider and from a template; "
            "remove one of them."
        )
    return claimed if claimed is not None else outputs.source_identity


def with_templates(
    templates: SessionTemplates,
    claims: Claims,
    tags: Mapping[str, str],
    transitive: tuple[str, ...],
    source_identity: str | None,
) -> tuple[dict[str, str], tuple[str, ...], str | None]:
    """A verified identity's tags and SourceIdentity with its provider's templates added
    (what every path then carries); unchanged when the provider templates nothing."""
    if not templates.tags and templates.source_identity is None:
        return dict(tags), transitive, source_identity
    outputs = render_session(templates, claims)
    merged, merged_transitive = merged_tags(tags, transitive, outputs)
    return merged, merged_transitive, merged_source_identity(source_identity, outputs)
