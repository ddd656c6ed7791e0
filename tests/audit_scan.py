"""Finding secrets in audit events: the check behind "no event ever holds a secret".

Two nets, both real:

1. **Known values.** :class:`SecretScanner` learns the actual secrets of a run by watching
   the HTTP traffic of every in-process server (:class:`TrafficTap`, an ASGI wrapper):
   form and query fields that carry proofs (``SAMLResponse``, ``WebIdentityToken``,
   ``TokenCode``, OAuth codes and verifiers, refresh tokens, SigninTokens), cookies sent and
   set, SigV4 signatures and session tokens in headers, and the secrets in answers (XML
   ``SecretAccessKey``/``SessionToken``/``WebIdentityToken``, the same keys in JSON, the
   credentials page's ``export`` lines, auto-post forms). An event containing any of them
   is a leak; a TOTP code (six digits, which occur by chance inside longer numbers) must
   not be any string or number value of an event.
2. **Shapes.** Whatever the tap did not see: member names that only secrets have
   (``secretAccessKey``, ``sessionToken``, ``SAMLAssertion``, ``tokenCode``, ``cookie``,
   ...), a JWT (``eyJ...``), SAML or any XML document (raw or base64), and the broker's own
   sealed-token layout (long base64url text that decodes to its version byte).

``tests/unit/test_audit_scan.py`` feeds the scanner events that leak each kind of secret
(real ones: a sealed token, a signed SAML response, an ID token, a TOTP code, a cookie)
and checks every one is found, so a scan that finds nothing means something.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECRET_FIELDS = frozenset(
    {
        "samlresponse",
        "samlassertion",
        "webidentitytoken",
        "tokencode",
        "code",
        "code_verifier",
        "refresh_token",
        "device_code",
        "id_token",
        "access_token",
        "signintoken",
        "client_secret",
        "csrf_token",
        "x-amz-security-token",
        "x-amz-signature",
    }
)
"""Form, query and JSON member names (lowercase) whose values are secrets."""
ANSWER_KEYS = frozenset(
    {
        "secretaccesskey",
        "sessiontoken",
        "token",
        "secretkey",
        "webidentitytoken",
        "sessionkey",
        *SECRET_FIELDS,
    }
)
"""JSON answer members (lowercase) holding secrets (credential_process, IMDS, OAuth)."""
FORBIDDEN_NAMES = frozenset(
    {
        "secretaccesskey",
        "sessiontoken",
        "samlassertion",
        "samlresponse",
        "webidentitytoken",
        "idtoken",
        "tokencode",
        "cookie",
        "setcookie",
        "password",
        "clientsecret",
        "refreshtoken",
        "signintoken",
        "codeverifier",
        "sessionkey",
    }
)
"""Member names (lowercase, ``_``/``-`` dropped) no event may use."""
_MIN_SECRET = 16
_XML_ANSWER = re.compile(r"<(SecretAccessKey|SessionToken|WebIdentityToken)>([^<]{16,})</")
_EXPORT = re.compile(r"(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)\W{1,3}([A-Za-z0-9+/=_-]{16,})")
_HIDDEN = re.compile(r'name="([A-Za-z_]+)"\s+value="([^"]{16,})"')
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
_XML = re.compile(r"<\?xml|<(?:saml2?p?|md|ds|xenc):|<Assertion[\s>]|<Response[\s>]")
_BASE64_XML = re.compile(r"PD94bWw|PHNhbWw|PHNhbWxw|PHNhbWwy|PEFzc2VydGlvb|PFJlc3BvbnNl")
_BASE64URL_RUN = re.compile(r"[A-Za-z0-9_-]{44,}")
_SEALED_VERSIONS = frozenset({0x02, 0x82})
"""First byte of a broker session token: version 2, with or without the zlib flag 0x80
(broker/identity/session_tokens.py; test_audit_scan proves a real token is recognised)."""
_TOTP = re.compile(r"[0-9]{6}")


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a JSON document, keys included as ``path#key``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path}#key", key
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _leaves(item, f"{path}[{n}]")
    else:
        yield path, value


def _sealed_token(text: str) -> bool:
    """Whether ``text`` is laid out like the broker's sealed session token."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 33 and raw[0] in _SEALED_VERSIONS


@dataclass
class SecretScanner:
    """The secrets of a run, and the findings of events checked against them."""

    secrets: dict[str, str] = field(default_factory=dict)
    """Secret value -> where it was seen (for the failure message, never the value)."""
    totp_codes: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, value: str, where: str) -> None:
        if len(value) >= _MIN_SECRET:
            with self._lock:
                self.secrets.setdefault(value, where)

    def add_totp(self, code: str) -> None:
        with self._lock:
            self.totp_codes.add(code)

    # -- learning from traffic ------------------------------------------------------------

    def learn_pairs(self, pairs: list[tuple[str, str]], where: str) -> None:
        for name, value in pairs:
            lowered = name.lower()
            if lowered == "tokencode" and _TOTP.fullmatch(value):
                self.add_totp(value)
            elif lowered == "session":
                self.learn_json(value, where)
            elif lowered in SECRET_FIELDS:
                self.add(value, f"{where} {name}")

    def learn_json(self, text: str, where: str) -> None:
        # The security tests send and serve documents nested past what Python's parser
        # (or _leaves) can recurse through: the broker refuses those, the tap skips them.
        try:
            leaves = list(_leaves(json.loads(text)))
        except (ValueError, RecursionError):
            return
        for path, value in leaves:
            key = path.rsplit(".", 1)[-1].lower()
            if isinstance(value, str) and key in ANSWER_KEYS:
                self.add(value, f"{where} {key}")

    def learn_text(self, text: str, where: str) -> None:
        for _, value in _XML_ANSWER.findall(text):
            self.add(value, f"{where} XML answer")
        for value in _EXPORT.findall(text):
            self.add(value, f"{where} credentials page")
        for name, value in _HIDDEN.findall(text):
            if name.lower() in SECRET_FIELDS or name == "RelayState":
                self.add(value, f"{where} form field {name}")

    def learn_headers(self, headers: list[tuple[bytes, bytes]], where: str) -> None:
        for raw_name, raw_value in headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name == "cookie":
                for part in value.split(";"):
                    self.add(part.partition("=")[2].strip(), f"{where} cookie")
            elif name == "set-cookie":
                self.add(value.split(";", 1)[0].partition("=")[2], f"{where} set-cookie")
            elif name == "authorization":
                for signature in re.findall(r"Signature=([0-9a-f]{64})", value):
                    self.add(signature, f"{where} SigV4 signature")
            elif name == "x-amz-security-token":
                self.add(value, f"{where} session token header")
            elif name == "location" and "?" in value:
                self.learn_pairs(parse_qsl(value.partition("?")[2]), f"{where} redirect")

    # -- checking -------------------------------------------------------------------------

    def findings(self, event: Mapping[str, Any]) -> list[str]:
        """What in ``event`` is (or is shaped like) a secret; empty when it is clean."""
        found: list[str] = []
        line = json.dumps(event)
        with self._lock:
            known = list(self.secrets.items())
            codes = set(self.totp_codes)
        for value, where in known:
            if value in line:
                found.append(f"holds a secret seen in {where}")
        for path, value in _leaves(event):
            if path.endswith("#key"):
                name = str(value).lower().replace("_", "").replace("-", "")
                if name in FORBIDDEN_NAMES:
                    found.append(f"member {value!r} at {path[:-4] or '.'} names a secret")
                continue
            if str(value) in codes:
                found.append(f"{path} is a TOTP code")
            if not isinstance(value, str):
                continue
            if _JWT.search(value):
                found.append(f"{path} holds a JWT")
            if _XML.search(value) or _BASE64_XML.search(value):
                found.append(f"{path} holds an XML document (a SAML message?)")
            if any(_sealed_token(run) for run in _BASE64URL_RUN.findall(value)):
                found.append(f"{path} holds a sealed session token")
        return found


class TrafficTap:
    """ASGI wrapper that teaches a :class:`SecretScanner` every secret crossing ``app``."""

    def __init__(self, app: ASGIApp, scanner: SecretScanner) -> None:
        self.app = app
        self._scanner = scanner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scanner = self._scanner
        where = f"{scope.get('method', '')} {scope.get('path', '')}"
        scanner.learn_headers(list(scope.get("headers", [])), f"request {where}")
        query = scope.get("query_string", b"").decode("latin-1")
        scanner.learn_pairs(parse_qsl(query), f"request {where} query")
        body: list[bytes] = []
        answer: list[bytes] = []

        async def tapped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._learn_body(b"".join(body), f"request {where}", form=True)
            return message

        async def tapped_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                scanner.learn_headers(list(message.get("headers", [])), f"answer to {where}")
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._learn_body(b"".join(answer), f"answer to {where}", form=False)
            await send(message)

        await self.app(scope, tapped_receive, tapped_send)

    def _learn_body(self, raw: bytes, where: str, *, form: bool) -> None:
        text = raw.decode("utf-8", "replace")
        if form:
            self._scanner.learn_pairs(parse_qsl(text), f"{where} form")
        self._scanner.learn_json(text, where)
        self._scanner.learn_text(text, where)
