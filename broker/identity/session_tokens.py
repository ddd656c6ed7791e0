"""Session tokens: everything a session is, sealed so any node can verify it with no lookup.

Format (then base64url without padding)::

    version (1) | key tag (4) | nonce (12) | AES-256-GCM( deflate?(compact JSON claims) ) + tag (16)

- AES-GCM authenticates the header as associated data, so flipping any byte, including the
  version or key tag, is refused.
- The key tag is the first 4 bytes of SHA-256 of the configured key ID: the token names the
  key that sealed it (rotation: the first configured key seals, every key opens), without
  revealing the ID.
- The secret access key is not stored: it is derived from the key and the nonce with keyed
  BLAKE2b (a separate HKDF sub-key as the BLAKE2 key), which keeps tokens ~60 bytes
  shorter. Anyone able to derive it could already forge tokens, so nothing is lost. Keyed
  BLAKE2b is a PRF by design (RFC 7693) and is CPython's own code: HMAC-SHA256 through
  OpenSSL, which version 1 used, looks its algorithm up on every call, a cost on every mint
  (measured in bench/README.md). Version 1 tokens are refused as an unknown format (no
  release sealed any).
- Claims are compact JSON, deflated only when they exceed :data:`_DEFLATE_FROM` bytes and
  deflating makes them shorter. Session policies and tags compress well and need it; a plain
  role session's few hundred bytes of claims would shrink by a third, but deflate's state is
  allocated and freed on every call, cold in the cache, which costs each mint more than the
  bytes are worth (bench/README.md), and inflating would cost every signed call made with
  the token again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.records import fast_init

_VERSION = 2
_FLAG_ZLIB = 0x80
_HEADER = 1 + 4 + 12
_MAX_TOKEN_CHARS = 8192
"""Refuse to even decode anything longer: real tokens stay far below this."""
_DEFLATE_FROM = 512
"""Claims up to this many bytes are sealed as they are (see the module doc): a plain
AssumeRole session token is then ~370 characters instead of ~270. AWS fixes no size for
session tokens and tells clients to assume none, so the shorter form buys nothing a client
can rely on."""


@fast_init
@dataclass(frozen=True)
class SessionClaims:
    """What a temporary credential is. Field names are long here, short on the wire."""

    access_key_id: str
    account: str
    kind: str
    """``assumed-role``, ``session`` (GetSessionToken) or ``federated-user``."""
    arn: str
    """The caller ARN GetCallerIdentity answers (assumed-role/federated-user/user ARN)."""
    user_id: str
    """``AROA...:session``, ``AIDA...`` or ``ACCOUNT:name``."""
    principal_name: str
    """Role name (assumed-role), user name (session) or federated user name."""
    principal_path: str
    issued_at: int
    expires_at: int
    source_arn: str = ""
    """The long-term identity at the root of the chain (user ARN or provider ARN)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tag_keys: Sequence[str] = ()
    source_identity: str | None = None
    session_policy: str | None = None
    policy_arns: Sequence[str] = ()
    mfa: bool = False
    mfa_authenticated_at: int | None = None
    chain_depth: int = 0
    chain_roles: Sequence[str] = ()
    """The roles of the sessions this one was chained from (each once, oldest first): a
    revocation of any of them reaches this session too (:mod:`broker.identity.revocation`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Adapter-specific context (federation provider, web identity claims) for later stages."""


def role_arn_of(claims: SessionClaims) -> str | None:
    """The role a role session (``assumed-role``) is a session of; None for other kinds."""
    if claims.kind != "assumed-role":
        return None
    return f"arn:aws:iam::{claims.account}:role{claims.principal_path}{claims.principal_name}"


_WIRE = {
    "access_key_id": "k",
    "account": "a",
    "kind": "t",
    "arn": "r",
    "user_id": "u",
    "principal_name": "n",
    "principal_path": "p",
    "issued_at": "i",
    "expires_at": "e",
    "source_arn": "o",
    "tags": "g",
    "transitive_tag_keys": "x",
    "source_identity": "s",
    "session_policy": "P",
    "policy_arns": "A",
    "mfa": "m",
    "mfa_authenticated_at": "M",
    "chain_depth": "c",
    "chain_roles": "C",
    "extra": "X",
}
_FROM_WIRE = {v: k for k, v in _WIRE.items()}
_DEFAULTS = {f: SessionClaims.__dataclass_fields__[f].default for f in _WIRE}
_WIRE_FIELDS = tuple((name, short, _DEFAULTS[name]) for name, short in _WIRE.items())
"""``(field, wire key, default)`` in wire order, so sealing does no lookups per field."""


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Built once: ``json.dumps`` with options builds a new encoder on every call."""


def _compact_json(value: dict[str, Any]) -> str:
    """``_COMPACT_JSON.encode(value)``: the same text, without its per-call set-up.

    ``JSONEncoder.encode`` makes a new C encoder object on every call, on every mint. The
    one made here has no circular-reference ``markers`` (claims are plain data,
    never circular), so it keeps no state between calls and can be shared; where the C
    accelerator is missing the encoder above is used.
    """
    if _C_ENCODE is None:
        return _COMPACT_JSON.encode(value)
    return "".join(_C_ENCODE(value, 0))


_C_ENCODE = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, _COMPACT_JSON.default, encode_basestring, None, ":", ",", False, False, True
    )
)


class TokenInvalidError(Exception):
    """The token is not one this broker sealed (tampered, foreign, truncated, unknown key)."""


@dataclass(frozen=True)
class _Key:
    tag: bytes
    aead: AESGCM
    secret_key: bytes


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class TokenSealer:
    """Seals claims under the first key; opens tokens sealed by any configured key."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("at least one token key is required")
        self._keys: dict[bytes, _Key] = {}
        for key_id, secret in keys:
            tag = hashlib.sha256(key_id.encode()).digest()[:4]
            self._keys[tag] = _Key(
                tag=tag,
                aead=AESGCM(_derive(secret, b"sts-broker token seal v1")),
                secret_key=_derive(secret, b"sts-broker secret access key v1"),
            )
        self._sealing = self._keys[hashlib.sha256(keys[0][0].encode()).digest()[:4]]

    def seal(self, claims: SessionClaims) -> tuple[str, str]:
        """Seal ``claims``; return ``(session_token, secret_access_key)``."""
        payload = _compact_json(_to_wire(claims)).encode()
        flags = _VERSION
        if len(payload) > _DEFLATE_FROM:
            packed = _deflate(payload)
            if len(packed) < len(payload):
                payload, flags = packed, _VERSION | _FLAG_ZLIB
        nonce = os.urandom(12)  # the OS CSPRNG, as secrets.token_bytes (one call less)
        header = bytes([flags]) + self._sealing.tag + nonce
        sealed = self._sealing.aead.encrypt(nonce, payload, header)
        token = base64.urlsafe_b64encode(header + sealed).rstrip(b"=").decode()
        return token, _secret_for(self._sealing, nonce)

    def open(self, token: str) -> tuple[SessionClaims, str]:
        """Verify and decode a token; return ``(claims, secret_access_key)``.

        Raises :class:`TokenInvalidError` for anything not sealed by a configured key. Expiry
        is the caller's check (it owns the clock and AWS's distinct error code).
        """
        if len(token) > _MAX_TOKEN_CHARS:
            raise TokenInvalidError("token too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise TokenInvalidError("not base64url") from exc
        if len(raw) < _HEADER + 16 or raw[0] & ~_FLAG_ZLIB != _VERSION:
            raise TokenInvalidError("unknown token format")
        key = self._keys.get(raw[1:5])
        if key is None:
            raise TokenInvalidError("sealed by a key this broker does not hold")
        header, nonce = raw[:_HEADER], raw[5:_HEADER]
        try:
            payload = key.aead.decrypt(nonce, raw[_HEADER:], header)
        except InvalidTag as exc:
            raise TokenInvalidError("authentication tag mismatch") from exc
        if raw[0] & _FLAG_ZLIB:
            payload = zlib.decompress(payload, _WBITS)
        return _from_wire(json.loads(payload)), _secret_for(key, nonce)


_WBITS = -9
"""Raw deflate with a 512-byte window and the smallest memory level: claims are a few
hundred bytes, so the default 32 KiB window buys nothing, and its ~256 KiB of state is what
dominates a call when the allocator cannot reuse it."""


def _deflate(payload: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS, 1)
    return compressor.compress(payload) + compressor.flush()


def _secret_for(key: _Key, nonce: bytes) -> str:
    # 30 bytes of keyed BLAKE2b: 40 base64 characters, AWS's secret length.
    mac = hashlib.blake2b(nonce, key=key.secret_key, digest_size=30).digest()
    return base64.b64encode(mac).decode()


def _to_wire(claims: SessionClaims) -> dict[str, Any]:
    """Short keys, defaults omitted: a plain AssumeRole session seals to ~250 bytes."""
    out: dict[str, Any] = {}
    values = vars(claims)  # a frozen dataclass keeps its fields in its __dict__
    for name, short, default in _WIRE_FIELDS:
        value = values[name]
        if value == default or (not value and value not in (0, False)):
            continue
        # Most fields are plain str/int/bool: skip the ABC ``isinstance`` checks for them,
        # which were a third of sealing's Python time.
        cls = type(value)
        if cls is str or cls is int or cls is bool:
            out[short] = value
            continue
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[short] = value
    return out


def _from_wire(data: dict[str, Any]) -> SessionClaims:
    values: dict[str, Any] = {_FROM_WIRE[k]: v for k, v in data.items() if k in _FROM_WIRE}
    if "transitive_tag_keys" in values:
        values["transitive_tag_keys"] = tuple(values["transitive_tag_keys"])
    if "policy_arns" in values:
        values["policy_arns"] = tuple(values["policy_arns"])
    if "chain_roles" in values:
        values["chain_roles"] = tuple(values["chain_roles"])
    values.setdefault("source_arn", "")
    values.setdefault("principal_path", "/")
    return SessionClaims(**values)
