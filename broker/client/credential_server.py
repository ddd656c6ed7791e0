"""``sts-broker serve-credentials``: a profile's refreshing credentials for local workloads,
in the shapes every AWS SDK reads with no configuration of its own.

Some tools only read credentials from a metadata endpoint (containers, agents, test
runners such as LocalStack's). This serves them on ``127.0.0.1``:

- **ECS container credentials**: ``GET /credentials`` with the header ``Authorization:
  TOKEN`` answers ``{"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}``.
  SDKs find it through ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and send
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN``; both are printed at start for the user to export.
  The token is 256 random bits made per run; a request without it, or with another, is a
  401, compared in constant time.
- **IMDSv2** (``--imds``, ``AWS_EC2_METADATA_SERVICE_ENDPOINT``): ``PUT /latest/api/token``
  with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600) gives a session token; with it in
  ``X-aws-ec2-metadata-token``, ``GET /latest/meta-data/iam/security-credentials/`` names
  the role and ``.../ROLE`` answers ``{"Code": "Success", "LastUpdated", "Type":
  "AWS-HMAC", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}``. Like EC2's, it
  hands credentials to any local process that asks (the PUT is the only proof), which is
  why it is off unless asked for; a PUT carrying ``X-Forwarded-For`` is refused, as EC2
  refuses it, so a local proxy cannot be turned into a relay for it.

Refusals that hold for both: the socket is bound to ``127.0.0.1`` only; a request whose
peer address is not loopback is a 403 anyway (a second line, should the socket ever be
reachable otherwise, e.g. through ``route_localnet``); and the ``Host`` header must be
``127.0.0.1:PORT`` or ``localhost:PORT``, so a web page whose own host name resolves to
127.0.0.1 (DNS rebinding) is refused rather than treated as this server.

Credentials come from the cache (:mod:`broker.client.cache`) and are refreshed when fewer
than :data:`REFRESH_BEFORE` seconds remain: SDKs refresh container credentials 15 minutes
before they expire and insist at 10, so what is served always has more left than that
(except for roles whose sessions are shorter). Standard library only (``http.server``):
this runs on a laptop and must not pull in the server side. Nothing is logged but the
method, path and status of refusals; never a token or a key.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import secrets
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from broker.client.cache import CachedLogin, CacheError, CredentialCache

HOST = "127.0.0.1"
ECS_PATH = "/credentials"
IMDS_TOKEN_PATH = "/latest/api/token"
IMDS_ROLE_PATH = "/latest/meta-data/iam/security-credentials/"
IMDS_MAX_TTL = 21600
MAX_IMDS_TOKENS = 1000
"""Live IMDS session tokens kept; the oldest is forgotten past this (bounded memory)."""
REFRESH_BEFORE = 900
EXIT_FAILED = 1


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def is_loopback_peer(address: str) -> bool:
    """Whether a peer address (as ``accept`` reports it) is this machine's loopback."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class CredentialSource:
    """The profile's credentials, refreshed when needed, one refresh at a time."""

    def __init__(self, cache: CredentialCache, profile: str) -> None:
        self._cache = cache
        self._profile = profile
        self._lock = threading.Lock()

    def current(self) -> CachedLogin:
        """Fresh credentials; CacheError when the login can no longer give any."""
        with self._lock:
            return self._cache.fresh(self._profile, refresh_before=REFRESH_BEFORE, now=time.time())


class CredentialServer(ThreadingHTTPServer):
    """The HTTP server; its handler reads everything it needs from here."""

    daemon_threads = True

    def __init__(self, source: CredentialSource, *, port: int, imds: bool) -> None:
        super().__init__((HOST, port), _Handler)
        self.source = source
        self.token = secrets.token_urlsafe(32)
        self.imds = imds
        self.port = int(self.server_address[1])
        self.hosts = {f"{HOST}:{self.port}", f"localhost:{self.port}"}
        self._imds_tokens: OrderedDict[str, float] = OrderedDict()
        self._imds_lock = threading.Lock()

    @property
    def ecs_uri(self) -> str:
        return f"http://{HOST}:{self.port}{ECS_PATH}"

    @property
    def imds_endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def new_imds_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._imds_lock:
            self._imds_tokens[token] = time.monotonic() + ttl
            while len(self._imds_tokens) > MAX_IMDS_TOKENS:
                self._imds_tokens.popitem(last=False)
        return token

    def imds_token_valid(self, token: str) -> bool:
        now = time.monotonic()
        with self._imds_lock:
            for known in [t for t, ends in self._imds_tokens.items() if ends <= now]:
                del self._imds_tokens[known]
            # Constant time per candidate: the comparison says nothing about near misses.
            return any(hmac.compare_digest(token, known) for known in self._imds_tokens)


class _Handler(BaseHTTPRequestHandler):
    server: CredentialServer
    timeout = 10  # a local process that connects and says nothing cannot hold a thread

    def do_GET(self) -> None:
        self._answer_or_refuse("GET")

    def do_PUT(self) -> None:
        self._answer_or_refuse("PUT")

    def _answer_or_refuse(self, method: str) -> None:
        try:
            status, content_type, body, headers = self._route(method)
        except _Refused as refused:
            status, content_type, headers = refused.status, "application/json", {}
            body = json.dumps({"code": refused.code, "message": refused.message})
            sys.stderr.write(f"refused {method} {self.path[:100]!r}: {refused.status}\n")
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> tuple[int, str, str, dict[str, str]]:
        if not is_loopback_peer(str(self.client_address[0])):
            raise _Refused(403, "Forbidden", "only processes on this machine may ask")
        if self.headers.get("Host", "") not in self.server.hosts:
            raise _Refused(403, "Forbidden", f"Host must be {HOST}:{self.server.port}")
        path = self.path.split("?", 1)[0]
        if path == ECS_PATH and method == "GET":
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), self.server.token.encode()):
                raise _Refused(401, "Unauthorized", "send AWS_CONTAINER_AUTHORIZATION_TOKEN")
            login = self._login()
            return 200, "application/json", json.dumps(_ecs_answer(login)), {}
        if self.server.imds and path.startswith("/latest/"):
            return self._imds(method, path)
        raise _Refused(404, "NotFound", "nothing here")

    def _imds(self, method: str, path: str) -> tuple[int, str, str, dict[str, str]]:
        if path == IMDS_TOKEN_PATH:
            if method != "PUT":
                raise _Refused(405, "MethodNotAllowed", "PUT a token request")
            if "X-Forwarded-For" in self.headers:
                raise _Refused(403, "Forbidden", "token requests through a proxy are refused")
            raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not raw.isdigit() or not 1 <= int(raw) <= IMDS_MAX_TTL:
                raise _Refused(400, "BadRequest", f"give a TTL of 1-{IMDS_MAX_TTL} seconds")
            token = self.server.new_imds_token(int(raw))
            return 200, "text/plain", token, {"X-aws-ec2-metadata-token-ttl-seconds": raw}
        if method != "GET":
            raise _Refused(405, "MethodNotAllowed", "GET metadata")
        if not self.server.imds_token_valid(self.headers.get("X-aws-ec2-metadata-token", "")):
            raise _Refused(401, "Unauthorized", "PUT /latest/api/token first (IMDSv2)")
        if not path.startswith(IMDS_ROLE_PATH):
            raise _Refused(404, "NotFound", "only IAM credentials are served")
        login = self._login()
        role = role_name(login)
        asked = path[len(IMDS_ROLE_PATH) :]
        if asked == "":
            return 200, "text/plain", role, {}
        if asked != role:
            raise _Refused(404, "NotFound", f"the role here is {role}")
        return 200, "application/json", json.dumps(_imds_answer(login)), {}

    def _login(self) -> CachedLogin:
        try:
            return self.server.source.current()
        except CacheError as exc:
            sys.stderr.write(f"sts-broker serve-credentials: {exc}\n")
            raise _Refused(503, "CredentialsUnavailable", str(exc)) from None

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: refusals are reported by :meth:`_answer_or_refuse`, without headers."""


def role_name(login: CachedLogin) -> str:
    return login.role_arn.rsplit("/", 1)[-1] or "sts-broker"


def _ecs_answer(login: CachedLogin) -> dict[str, str]:
    creds = login.credentials
    return {
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "Token": creds["SessionToken"],
        "Expiration": creds["Expiration"],
        "RoleArn": login.role_arn,
    }


def _imds_answer(login: CachedLogin) -> dict[str, str]:
    creds = login.credentials
    return {
        "Code": "Success",
        "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "Type": "AWS-HMAC",
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "Token": creds["SessionToken"],
        "Expiration": creds["Expiration"],
    }


def run_server(args: argparse.Namespace) -> int:
    from broker.client.snippets import shell_lines, shell_of  # noqa: PLC0415 - start-up only

    source = CredentialSource(CredentialCache(), args.profile)
    try:
        login = source.current()  # not logged in: say so now, not at the first request
        server = CredentialServer(source, port=args.port, imds=args.imds)
    except CacheError as exc:
        print(f"sts-broker serve-credentials: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(
            f"sts-broker serve-credentials: cannot listen on {HOST}:{args.port}: "
            f"{(exc.strerror or str(exc)).lower()}; choose another --port (0: any free one)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    variables = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.ecs_uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", server.token),
    ]
    if args.imds:
        variables.append(("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.imds_endpoint))
    print(shell_lines(variables, shell_of(args.shell)), flush=True)
    print(
        f"Serving the credentials of {args.profile} ({login.role_arn}) on "
        f"http://{HOST}:{server.port}{' (ECS and IMDSv2)' if args.imds else ' (ECS)'}; "
        "export the variables above in the workload's environment. Ctrl-C stops.",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
