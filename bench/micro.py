"""In-process micro benchmarks and session-token sizes: where the per-request time goes.

The HTTP numbers say *how much* the broker costs over a bare app; these say *which stage*
costs it, with no socket, event loop or HTTP parsing in the way. Every input is produced
the way production produces it: requests are signed by botocore, claims come from the real
engine running AssumeRole on the demo configuration.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import re
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from server import bare_form_app, baseline_app, baseline_body
from starlette.types import ASGIApp
from webid import ACCOUNT as WEB_ACCOUNT
from webid import EXPECT as WEB_EXPECT
from webid import Issuer, add_web_identity, request_body

from broker.app import create_app, token_keys
from broker.clock import SystemClock
from broker.config import BrokerConfig, RateLimit, ThrottlingSettings, load_config
from broker.directory import Directory
from broker.iam import AuthzRequest, evaluate_policies
from broker.identity import (
    Caller,
    TokenSealer,
    WebIdentityVerifier,
    authenticate,
    read_signature,
    verify_signature,
)
from broker.request import HttpRequestParts
from broker.store import MemoryStore, SqliteStore
from broker.sts.model import StsModel
from broker.throttling import Throttle

NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
URL = "http://127.0.0.1:8080/"
REGION = "us-east-1"
ALICE_KEY = "AKIABTXV5AHDQBAUYSKD"
DEV_ROLE = "arn:aws:iam::111111111111:role/Dev"
SESSION_NAME = "bench"
GCI_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
TAGS = {
    "Project": "checkout-service",
    "CostCenter": "cc-4711",
    "Team": "platform-payments",
    "Environment": "development",
    "Owner": "alice@example.com",
}
"""Five session tags of ordinary length, for the token-size figure the issue asks for."""
POLICY_CHARS = 1500


def assume_role_body(session_name: str = SESSION_NAME) -> str:
    """The form body boto3 sends for AssumeRole alice -> Dev with a fixed session name."""
    return (
        "Action=AssumeRole&Version=2011-06-15"
        f"&RoleArn={DEV_ROLE.replace(':', '%3A').replace('/', '%2F')}"
        f"&RoleSessionName={session_name}"
    )


def session_policy(chars: int = POLICY_CHARS) -> str:
    """A realistic minified session policy of exactly ``chars`` characters.

    Scoped S3 access over a list of team buckets (what session policies usually are), grown
    bucket by bucket and then padded in a ``Sid`` to the exact length. Real policies
    compress about this well; a run of one repeated character would flatter zlib.
    """
    resources: list[str] = []
    doc: dict[str, Any] = {}

    def build(pad: str = "") -> str:
        doc.clear()
        doc.update(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReadTeamData" + pad,
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetObjectVersion"],
                        "Resource": resources,
                    },
                    {
                        "Sid": "NoDeletes",
                        "Effect": "Deny",
                        "Action": ["s3:DeleteObject", "s3:DeleteBucket"],
                        "Resource": "*",
                    },
                ],
            }
        )
        return json.dumps(doc, separators=(",", ":"))

    names = ["ledger", "invoices", "exports", "reports", "audit", "archive", "staging", "ml"]
    index = 0
    while True:
        name = f"arn:aws:s3:::acme-{names[index % len(names)]}-{index:02d}-eu-west-1"
        candidate = [*resources, name, name + "/*"]
        saved = list(resources)
        resources[:] = candidate
        if len(build()) > chars - 8:
            resources[:] = saved
            break
        index += 1
    text = build()
    text = build("Q" * (chars - len(text)))
    if len(text) != chars:
        raise AssertionError(f"session policy is {len(text)} chars, wanted {chars}")
    return text


def signed_parts(
    body: str, access_key_id: str, secret: str, token: str | None = None
) -> HttpRequestParts:
    """A POST signed by botocore, as the broker's server would receive it."""
    request = AWSRequest(
        method="POST",
        url=URL,
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(access_key_id, secret, token), "sts", REGION).add_auth(request)
    prepared = request.prepare()
    headers = [("Host", urlsplit(URL).netloc)]
    headers += [
        (k, v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in prepared.headers.items()
    ]
    assert isinstance(prepared.body, bytes)
    return HttpRequestParts(
        method="POST",
        path="/",
        query_string="",
        headers=headers,
        body=prepared.body,
        client_ip="127.0.0.1",
    )


async def asgi_post(app: ASGIApp, parts: HttpRequestParts) -> tuple[int, bytes]:
    """One request straight into an ASGI app: no socket, no HTTP parsing, no uvicorn.

    The difference between this and the HTTP figures is what the server and the wire cost.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": parts.method,
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query_string.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in parts.headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": parts.body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass(frozen=True)
class Timing:
    """Per-call cost of one operation over several batches (median and best)."""

    name: str
    iterations: int
    median_us: float
    best_us: float


def _calibrate(spent_for: Callable[[int], int], batch_s: float) -> int:
    """Double the iteration count until a batch takes 20 ms, then scale it to ``batch_s``."""
    n = 1
    while True:
        spent = spent_for(n)
        if spent >= 20_000_000 or n >= 1 << 22:
            break
        n *= 2
    return max(1, int(n * batch_s * 1e9 / max(spent, 1)))


def time_op(name: str, fn: Callable[[], object], *, batch_s: float, batches: int = 5) -> Timing:
    """Calibrate a batch size to ~``batch_s``, then time ``batches`` batches with perf_counter_ns.

    The median batch is the figure; the best shows how much scheduler noise there was.
    """

    def spent_for(n: int) -> int:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return time.perf_counter_ns() - start

    fn()  # warm caches (signing-key LRU, compiled regexes) as a live server would have them
    n = _calibrate(spent_for, batch_s)
    per_op = [spent_for(n) / n / 1000 for _ in range(batches)]
    return Timing(name, n * batches, statistics.median(per_op), min(per_op))


def time_async(
    name: str, step: Callable[[int], Awaitable[object]], *, batch_s: float, batches: int = 5
) -> Timing:
    """:func:`time_op` for a coroutine, awaited in a loop inside one event loop.

    ``step(i)`` runs call number ``i``, so a caller can cycle through a pool of inputs.
    """

    async def run() -> Timing:
        async def spent(n: int) -> int:
            start = time.perf_counter_ns()
            for i in range(n):
                await step(i)
            return time.perf_counter_ns() - start

        await spent(1)
        n = 1
        while True:
            took = await spent(n)
            if took >= 20_000_000 or n >= 1 << 22:
                break
            n *= 2
        n = max(1, int(n * batch_s * 1e9 / max(took, 1)))
        per_op = [await spent(n) / n / 1000 for _ in range(batches)]
        return Timing(name, n * batches, statistics.median(per_op), min(per_op))

    return asyncio.run(run())


def time_asgi(
    name: str,
    app: ASGIApp,
    parts: HttpRequestParts | Sequence[HttpRequestParts],
    *,
    batch_s: float,
    batches: int = 5,
    expect: bytes = b"",
) -> Timing:
    """:func:`time_async` for requests replayed into an ASGI app; anything but 200 fails.

    Several ``parts`` are cycled through (distinct web identity tokens, say).
    """
    pool = [parts] if isinstance(parts, HttpRequestParts) else list(parts)

    async def step(i: int) -> None:
        status, body = await asgi_post(app, pool[i % len(pool)])
        if status != 200 or expect not in body:
            raise RuntimeError(f"{name}: HTTP {status}: {body[:300]!r}")

    return time_async(name, step, batch_s=batch_s, batches=batches)


def unsigned_parts(body: str) -> HttpRequestParts:
    """An unsigned form POST (AssumeRoleWithWebIdentity is unsigned, as in AWS)."""
    return HttpRequestParts(
        method="POST",
        path="/",
        query_string="",
        headers=[
            ("Host", urlsplit(URL).netloc),
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ],
        body=body.encode(),
        client_ip="127.0.0.1",
    )


def bench_config(demo: Path, folder: Path, issuer: Issuer) -> tuple[Path, dict[str, str]]:
    """The demo config plus a known token key, sts:TagSession on Dev, the bench OIDC issuer.

    The key lets this process open the tokens the in-process broker mints (the demo seals
    with a random key); TagSession lets a tagged session be minted for the size figure;
    the issuer (:mod:`webid`, keys from a JWKS file in ``folder``) and its ``WebBench`` role
    serve AssumeRoleWithWebIdentity. The other users and roles are the demo's.
    """
    data = yaml.safe_load(demo.read_text())
    variant = copy.deepcopy(data)
    variant["token_keys"] = [{"id": "bench", "secret": "${BENCH_TOKEN_KEY}"}]
    dev = variant["accounts"]["111111111111"]
    dev["roles"]["Dev"]["trust_policy"]["Statement"][0]["Action"] = [
        "sts:AssumeRole",
        "sts:TagSession",
    ]
    alice = dev["users"]["alice"]["policies"]["assume-roles"]["Statement"][0]
    alice["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    variant = add_web_identity(variant, issuer.write_jwks(folder / "bench-jwks.json"))
    path = folder / "demo-bench.yaml"
    path.write_text(yaml.safe_dump(variant, sort_keys=False))
    return path, {"BENCH_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}


def form(params: Mapping[str, str]) -> str:
    """A Query body encoded the way botocore encodes it (RFC 3986 unreserved kept)."""
    return urlencode(params, quote_via=quote, safe="-_.~")


def credentials_of(xml: bytes) -> dict[str, str]:
    """AccessKeyId, SecretAccessKey, SessionToken out of an AssumeRole answer."""
    found = ET.fromstring(xml).find("sts:AssumeRoleResult/sts:Credentials", NS)
    if found is None:
        raise RuntimeError(f"no credentials in AssumeRole answer: {xml[:300]!r}")
    return {child.tag.split("}")[1]: child.text or "" for child in found}


@dataclass(frozen=True)
class MicroReport:
    timings: list[Timing]
    token_sizes: dict[str, int]
    packed_policy_size_percent: int | None


WEB_TOKENS = 64
"""Distinct ID tokens cycled through by the in-process web identity timings."""


def run_micro(demo: Path, *, batch_s: float = 0.1) -> MicroReport:
    """Time each stage of a request in-process, and the whole app without HTTP.

    Tokens and claims come from the real app answering real AssumeRole requests, so seal
    and open are timed on exactly what production seals and opens. The config folder lives
    for the whole run because the broker reads the JWKS file at the first token, not at
    start-up.
    """
    with tempfile.TemporaryDirectory() as folder:
        return _run_micro(demo, Path(folder), batch_s=batch_s)


def _throttle_timings(folder: Path, *, batch_s: float) -> list[Timing]:
    """What throttling adds to one STS call: a token from the source address's bucket and one
    from the principal's, in the memory store and in SQLite (one transaction each). Limits
    no loop reaches, so every take succeeds and writes, as an honest client's calls do."""
    limit = RateLimit(rate=1_000_000, burst=10_000_000)
    settings = ThrottlingSettings(principal=limit, source_ip=limit)
    clock = SystemClock()
    timings = []
    for name, store in (
        ("memory", MemoryStore(clock)),
        ("sqlite", SqliteStore(folder / "throttle.db", clock)),
    ):
        throttle = Throttle(settings, store, clock)

        async def both(i: int, throttle: Throttle = throttle) -> None:
            await throttle.source_ip("AssumeRole", "127.0.0.1")
            await throttle.principal("AssumeRole", ALICE_KEY)

        label = f"Throttle: both buckets of one call ({name} store)"
        timings.append(time_async(label, both, batch_s=batch_s))
        asyncio.run(store.close())
    return timings


def _web_identity_timings(
    config: BrokerConfig, app: ASGIApp, issuer: Issuer, *, batch_s: float
) -> list[Timing]:
    """Verification alone, its RSA floor, and the whole request into the app and a bare one.

    The RSA-2048 PKCS#1 v1.5 verify by ``cryptography`` is the part no implementation can
    avoid; what ``verify`` costs beyond it is JOSE parsing and claim checks.
    """
    tokens = issuer.tokens(WEB_TOKENS)
    verifier = WebIdentityVerifier(config, SystemClock())

    async def verify(i: int) -> None:
        await verifier.verify(tokens[i % len(tokens)], account=WEB_ACCOUNT)

    public = issuer.key.public_key
    signing_input, _, signature = tokens[0].rpartition(".")
    raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))

    def rsa_verify() -> None:
        public.verify(raw_signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())

    requests = [unsigned_parts(request_body(token)) for token in tokens]
    status, answer = asyncio.run(asgi_post(app, requests[0]))
    if status != 200 or WEB_EXPECT not in answer:
        raise RuntimeError(f"in-process AssumeRoleWithWebIdentity refused: {answer[:300]!r}")
    try:
        return [
            time_async("WebIdentityVerifier.verify (RS256, 2048-bit)", verify, batch_s=batch_s),
            time_op("  of which RSA-2048 verify (cryptography)", rsa_verify, batch_s=batch_s),
            time_asgi(
                "ASGI, no HTTP: bare-form app",
                bare_form_app(answer),
                requests,
                batch_s=batch_s,
                expect=WEB_EXPECT,
            ),
            time_asgi(
                "ASGI, no HTTP: broker AssumeRoleWithWebIdentity",
                app,
                requests,
                batch_s=batch_s,
                expect=WEB_EXPECT,
            ),
        ]
    finally:
        asyncio.run(verifier.aclose())


def _run_micro(demo: Path, folder: Path, *, batch_s: float) -> MicroReport:
    issuer = Issuer()
    path, environ = bench_config(demo, folder, issuer)
    config = load_config(path, environ=environ)
    app = create_app(config)
    sealer = TokenSealer(token_keys(config))
    directory = Directory.build(config)
    model = StsModel.load()
    secret = directory.keys[ALICE_KEY].secret
    gci = signed_parts(GCI_BODY, ALICE_KEY, secret)
    plain_ar = signed_parts(assume_role_body(), ALICE_KEY, secret)
    big_body: dict[str, str] = {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": DEV_ROLE,
        "RoleSessionName": SESSION_NAME,
        "Policy": session_policy(),
    }
    for i, (key, value) in enumerate(TAGS.items(), start=1):
        big_body[f"Tags.member.{i}.Key"] = key
        big_body[f"Tags.member.{i}.Value"] = value
    big_ar = signed_parts(form(big_body), ALICE_KEY, secret)

    async def mint() -> tuple[bytes, bytes]:
        answers = []
        for parts in (plain_ar, big_ar):
            status, body = await asgi_post(app, parts)
            if status != 200:
                raise RuntimeError(f"in-process AssumeRole refused: {body[:300]!r}")
            answers.append(body)
        return answers[0], answers[1]

    plain_xml, big_xml = asyncio.run(mint())
    plain, big = credentials_of(plain_xml), credentials_of(big_xml)
    plain_claims, _ = sealer.open(plain["SessionToken"])
    big_claims, _ = sealer.open(big["SessionToken"])
    packed = re.search(rb"<PackedPolicySize>(\d+)</PackedPolicySize>", big_xml)
    temp_gci = signed_parts(
        GCI_BODY, plain["AccessKeyId"], plain["SecretAccessKey"], plain["SessionToken"]
    )

    alice: Caller = authenticate(
        gci, directory=directory, sealer=sealer, now=time.time(), region=REGION
    )
    role = directory.role(DEV_ROLE)
    assert role is not None
    context = alice.context(now=time.time(), source_ip="127.0.0.1", secure=False, region=REGION)
    context["sts:RoleSessionName"] = SESSION_NAME
    trust_request = AuthzRequest(
        action="sts:AssumeRole", resource=role.arn, context=context, principal=alice.principal()
    )
    if not evaluate_policies((role.trust_policy,), trust_request).allowed:
        raise AssertionError("the Dev trust policy should allow alice")
    gci_result = {"UserId": alice.user_id, "Account": alice.account, "Arn": alice.arn}
    request_id = "c6104cbe-af31-11e0-8154-cbc7ccf896c7"

    def sig_read_verify() -> None:
        claim = read_signature(gci)
        assert claim is not None
        verify_signature(claim, secret, now=time.time(), region=REGION)

    def auth_temp() -> None:
        authenticate(temp_gci, directory=directory, sealer=sealer, now=time.time(), region=REGION)

    plain_token, big_token = plain["SessionToken"], big["SessionToken"]
    ops: list[tuple[str, Callable[[], object]]] = [
        ("read_signature + verify_signature (alice GCI)", sig_read_verify),
        ("authenticate, temporary creds (open + verify)", auth_temp),
        ("TokenSealer.seal (plain AssumeRole claims)", lambda: sealer.seal(plain_claims)),
        ("TokenSealer.open (plain AssumeRole token)", lambda: sealer.open(plain_token)),
        ("TokenSealer.seal (1500-char policy + 5 tags)", lambda: sealer.seal(big_claims)),
        ("TokenSealer.open (1500-char policy + 5 tags)", lambda: sealer.open(big_token)),
        (
            "StsModel.render_result (GetCallerIdentity)",
            lambda: model.render_result("GetCallerIdentity", gci_result, request_id),
        ),
        (
            "evaluate_policies (Dev trust policy)",
            lambda: evaluate_policies((role.trust_policy,), trust_request),
        ),
        (
            "StsModel.parse_input (AssumeRole)",
            lambda: model.parse_input(
                "AssumeRole", {"RoleArn": DEV_ROLE, "RoleSessionName": SESSION_NAME}
            ),
        ),
    ]
    timings = [time_op(name, fn, batch_s=batch_s) for name, fn in ops]
    baseline = baseline_app(baseline_body(alice.user_id))
    for name, target, parts in (
        ("ASGI, no HTTP: baseline app", baseline, gci),
        ("ASGI, no HTTP: broker GetCallerIdentity", app, gci),
        ("ASGI, no HTTP: broker GCI, temporary creds", app, temp_gci),
        ("ASGI, no HTTP: broker AssumeRole", app, plain_ar),
    ):
        timings.append(time_asgi(name, target, parts, batch_s=batch_s))
    timings += _web_identity_timings(config, app, issuer, batch_s=batch_s)
    timings += _throttle_timings(Path(folder), batch_s=batch_s)
    sizes = {
        "plain AssumeRole (in-process)": len(plain_token.encode()),
        f"AssumeRole + {POLICY_CHARS}-char policy + {len(TAGS)} tags": len(big_token.encode()),
    }
    return MicroReport(
        timings=timings,
        token_sizes=sizes,
        packed_policy_size_percent=int(packed.group(1)) if packed else None,
    )
