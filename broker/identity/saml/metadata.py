"""IdP metadata: the entity ID and signing certificates each SAML provider is trusted with.

This is the ``KeySource`` port for SAML. A provider's metadata (a file next to the config,
or an https URL) is the *only* place signing keys come from: certificates inside a SAML
message are never used. Metadata is parsed through the same gate as responses
(:mod:`broker.identity.saml.xml`), reduced to a small frozen :class:`IdpMetadata` once per
load, and the hot path is a dict lookup.

Refresh: every ``saml.metadata_refresh_seconds`` the source is read again (file or URL).
When a refresh fails, the last good metadata keeps serving (IdP signing keys change
rarely and by planned rollover; failing every login because the metadata host blinked
would be worse) and the failure is logged; a retry happens at most once a minute. A
provider whose metadata was never loaded fails closed with ``IDPCommunicationError``.

What is *not* done: the metadata's own XML signature is not checked (trust comes from the
file the operator placed or from https to the URL the operator configured), and
``validUntil``/``cacheDuration`` are not enforced; certificate validity dates are not
enforced either (SAML V2.0 Metadata Interoperability Profile: the key is trusted because
the metadata lists it, not because of the certificate around it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree  # type: ignore[import-untyped,unused-ignore]

from broker.clock import Clock
from broker.config import BrokerConfig, KeyPath
from broker.errors import communication_error
from broker.identity.fetch import FetchFailed, describe, fetch_bounded
from broker.identity.refresh import wait_at_most
from broker.identity.saml.xml import DS, MD, SAMLP, XmlRefused, parse_xml
from broker.observability import record_idp_fetch

log = logging.getLogger("broker.saml")

MAX_METADATA_BYTES = 1024 * 1024
_MAX_CERTIFICATES = 10
_MIN_RSA_BITS = 2048
_EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_HTTP_TIMEOUT = 10.0
_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class SsoEndpoint:
    """Where the IdP takes AuthnRequests (for the browser flow)."""

    binding: str
    location: str


@dataclass(frozen=True)
class IdpMetadata:
    """What the broker needs from an IdP's metadata, parsed once per load."""

    entity_id: str
    certificates: tuple[x509.Certificate, ...]
    """Signing certificates (``use="signing"`` or no ``use``), in document order."""
    sso_endpoints: tuple[SsoEndpoint, ...]


class MetadataError(Exception):
    """The metadata can't be used; ``str(exc)`` is safe to show and log."""


def metadata_file_problems(config: BrokerConfig) -> Iterator[tuple[KeyPath, str]]:
    """Each ``metadata_file`` the parser below would refuse, as a config mistake at its key.

    A loader check (see :func:`broker.config.load_config`): a broken file stops start-up and
    ``check-config`` with the file's line, by the same parser the broker reads it with.
    """
    for account_id, account in config.accounts.items():
        for name, provider in account.saml_providers.items():
            if provider.metadata_file is None:
                continue
            path = Path(provider.metadata_file)
            at: KeyPath = ("accounts", account_id, "saml_providers", name, "metadata_file")
            try:
                parse_metadata(path.read_bytes())
            except OSError as exc:
                yield at, f"cannot read the metadata file {path} ({exc.strerror})"
            except MetadataError as exc:
                yield at, f"{path}: {exc}"


def parse_metadata(data: bytes) -> IdpMetadata:
    """The IdP entity of a metadata document, or :class:`MetadataError` saying why not."""
    try:
        root = parse_xml(data, max_bytes=MAX_METADATA_BYTES, what="metadata").root
    except XmlRefused as exc:
        raise MetadataError(str(exc)) from None
    if root.tag == f"{{{MD}}}EntitiesDescriptor":
        entities = [
            entity
            for entity in root.iter(f"{{{MD}}}EntityDescriptor")
            if entity.find(f"{{{MD}}}IDPSSODescriptor") is not None
        ]
        if len(entities) != 1:
            raise MetadataError(
                f"the metadata lists {len(entities)} identity providers; give a document "
                "with exactly one"
            )
        root = entities[0]
    elif root.tag != f"{{{MD}}}EntityDescriptor":
        raise MetadataError("the metadata's root is not an md:EntityDescriptor")
    entity_id = root.get("entityID") or ""
    if not 1 <= len(entity_id) <= 1024 or entity_id != entity_id.strip():
        raise MetadataError("the metadata's entityID must be 1-1024 characters")
    descriptors = [
        d
        for d in root.findall(f"{{{MD}}}IDPSSODescriptor")
        if SAMLP in (d.get("protocolSupportEnumeration") or "").split()
    ]
    if len(descriptors) != 1:
        raise MetadataError("the metadata must have exactly one SAML 2.0 IDPSSODescriptor")
    descriptor = descriptors[0]
    certificates = _signing_certificates(descriptor)
    endpoints = tuple(
        SsoEndpoint(binding=e.get("Binding") or "", location=e.get("Location") or "")
        for e in descriptor.findall(f"{{{MD}}}SingleSignOnService")
    )
    return IdpMetadata(entity_id=entity_id, certificates=certificates, sso_endpoints=endpoints)


def _signing_certificates(descriptor: etree._Element) -> tuple[x509.Certificate, ...]:
    found: list[x509.Certificate] = []
    problems: list[str] = []
    for key in descriptor.findall(f"{{{MD}}}KeyDescriptor"):
        if key.get("use") not in (None, "signing"):
            continue
        for element in key.findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
            try:
                cert = x509.load_der_x509_certificate(_b64(element.text or ""))
            except ValueError:
                problems.append("a signing certificate is not a valid X.509 certificate")
                continue
            problem = _weak(cert)
            if problem is not None:
                problems.append(problem)
            elif cert not in found:
                found.append(cert)
    if not found:
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise MetadataError(f"the metadata has no usable signing certificate{detail}")
    if len(found) > _MAX_CERTIFICATES:
        raise MetadataError(
            f"the metadata lists more than {_MAX_CERTIFICATES} signing certificates"
        )
    for problem in problems:
        log.warning("SAML metadata: ignoring a certificate: %s", problem)
    return tuple(found)


def _weak(cert: x509.Certificate) -> str | None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            return f"an RSA signing key of {key.key_size} bits (at least {_MIN_RSA_BITS})"
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if key.curve.name in _EC_CURVES else f"EC curve {key.curve.name}"
    return "a signing key that is neither RSA nor EC"


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


@dataclass
class _State:
    """Mutable cache entry for one metadata source; only :class:`MetadataSource` touches it."""

    metadata: IdpMetadata | None = None
    fresh_until: float = -math.inf
    next_attempt: float = -math.inf
    last_error: str | None = None
    inflight: asyncio.Future[None] | None = None


class MetadataSource:
    """Metadata per source (file path or URL), cached and refreshed as described above.

    Two providers (in two accounts) naming the same file or URL share one cache entry.
    It does not own ``http``.
    """

    def __init__(self, clock: Clock, http: httpx.AsyncClient, *, refresh_seconds: int) -> None:
        self._clock = clock
        self._http = http
        self._refresh_seconds = float(refresh_seconds)
        self._states: dict[str, _State] = {}

    async def get(self, source: str, *, provider_arn: str) -> IdpMetadata:
        """The metadata at ``source`` (an absolute file path or an http(s) URL)."""
        state = self._states.setdefault(source, _State())
        if self._due(state):
            await self._refresh(source, state)
        if state.metadata is None:
            raise communication_error(self._unloaded(state, provider_arn))
        return state.metadata

    async def check(self, source: str, *, provider_arn: str, wait: float) -> str | None:
        """Why logins through ``provider_arn`` would fail for want of metadata now; None
        when the metadata (or its last good copy) is there (readiness). A due refresh is
        started as a login would start it, waited for at most ``wait`` seconds."""
        state = self._states.setdefault(source, _State())
        if self._due(state):
            await wait_at_most(wait, self._refresh(source, state))
        return None if state.metadata is not None else self._unloaded(state, provider_arn)

    def _due(self, state: _State) -> bool:
        now = self._clock.time()
        return state.inflight is not None or (
            now >= state.fresh_until and now >= state.next_attempt
        )

    @staticmethod
    def _unloaded(state: _State, provider_arn: str) -> str:
        return (
            f"Couldn't load the SAML metadata of {provider_arn}: "
            f"{state.last_error or 'not loaded yet'}"
        )

    async def aclose(self) -> None:
        """Stop loads still in flight (shutdown)."""
        for state in self._states.values():
            if state.inflight is not None:
                state.inflight.cancel()

    async def _refresh(self, source: str, state: _State) -> None:
        """Single flight: concurrent callers share the one load in progress."""
        if state.inflight is None:
            state.next_attempt = self._clock.time() + _RETRY_SECONDS
            state.inflight = asyncio.ensure_future(self._load_into(source, state))
        task = state.inflight
        try:
            await asyncio.shield(task)
        finally:
            if state.inflight is task and task.done():
                state.inflight = None

    async def _load_into(self, source: str, state: _State) -> None:
        try:
            raw = await self._read(source)
            state.metadata = parse_metadata(raw)
            now = self._clock.time()
            state.fresh_until = now + self._refresh_seconds
            state.last_error = None
            record_idp_fetch("saml_metadata", source, ok=True, at=now)
        except MetadataError as exc:
            record_idp_fetch("saml_metadata", source, ok=False, at=self._clock.time())
            state.last_error = str(exc)
            log.warning(
                "SAML metadata %s: %s (%s)",
                source,
                exc,
                "serving the last good copy" if state.metadata else "no usable metadata",
            )

    async def _read(self, source: str) -> bytes:
        if not source.startswith(("http://", "https://")):
            try:
                raw = Path(source).read_bytes()
            except OSError as exc:
                raise MetadataError(f"cannot read the file ({exc.strerror})") from None
            return raw
        return await self._fetch(source)

    async def _fetch(self, url: str) -> bytes:
        """GET bounded in time and size, following redirects only within the same origin."""
        try:
            fetched = await fetch_bounded(
                self._http, url, max_bytes=MAX_METADATA_BYTES, timeout=_HTTP_TIMEOUT
            )
        except FetchFailed as exc:
            raise MetadataError(describe(exc, "metadata", MAX_METADATA_BYTES)) from None
        return fetched.body
