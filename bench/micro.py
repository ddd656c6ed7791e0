"""In-process micro benchmarks and session-token sizes: where the per-request time goes.

The HTTP numbers say *how much* the broker costs over a bare app; these say *which stage*
costs it, with no socket, event loop or HTTP parsing in the way. Every input is produced
the way production produces it: requests are signed by botocore, claims come from the real
engine running AssumeRole on the demo configuration.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from broker.clock import SystemClock
from broker.config import load_config
from broker.directory import Directory
from broker.iam import AuthzRequest, evaluate_policies
from broker.identity import read_signature, verify_signature
from broker.request import HttpRequestParts
from broker.sts.callers import Caller, authenticate
from broker.sts.engine import RequestInfo, StsEngine
from broker.sts.model import StsModel
from broker.sts.tokens import TokenSealer
from broker.store import MemoryStore

T = TypeVar("T")

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


def assume_role_params(model: StsModel, *, with_policy_and_tags: bool) -> dict[str, Any]:
    """AssumeRole parameters decoded by the real model, as the API layer hands them over."""
    raw: dict[str, str] = {"RoleArn": DEV_ROLE, "RoleSessionName": SESSION_NAME}
    if with_policy_and_tags:
        raw["Policy"] = session_policy()
        for i, (key, value) in enumerate(TAGS.items(), start=1):
            raw[f"Tags.member.{i}.Key"] = key
            raw[f"Tags.member.{i}.Value"] = value
    return model.parse_input("AssumeRole", raw)


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
        (k, v.decode("latin-1") if isinstance(v, bytes) else v)
        for k, v in prepared.headers.items()
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


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the engine without MFA) with no event loop.

    Keeps asyncio scheduling out of the per-call figure; refuses loudly if it does suspend.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("coroutine suspended: it needs a real event loop")


@dataclass(frozen=True)
class Timing:
    """Per-call cost of one operation over several batches (median and best)."""

    name: str
    iterations: int
    median_us: float
    best_us: float


def time_op(name: str, fn: Callable[[], object], *, batch_s: float, batches: int = 5) -> Timing:
    """Calibrate a batch size to ~``batch_s``, then time ``batches`` batches with perf_counter_ns.

    The median batch is the figure; the best shows how much scheduler noise there was.
    """
    fn()  # warm caches (signing-key LRU, compiled regexes) as a live server would have them
    n = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        spent = time.perf_counter_ns() - start
        if spent >= 20_000_000 or n >= 1 << 22:
            break
        n *= 2
    n = max(1, int(n * batch_s * 1e9 / max(spent, 1)))
    per_op: list[float] = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        per_op.append((time.perf_counter_ns() - start) / n / 1000)
    return Timing(name, n * batches, statistics.median(per_op), min(per_op))


def _tagging_config(demo: Path, folder: Path) -> Path:
    """The demo config with sts:TagSession allowed on Dev, so a tagged session can be minted.

    Only the permission changes; the role, user and everything sealed into the token are
    the demo's, so the token-size figure is the one a tagged demo session would have.
    """
    data = yaml.safe_load(demo.read_text())
    variant = copy.deepcopy(data)
    dev = variant["accounts"]["111111111111"]
    dev["roles"]["Dev"]["trust_policy"]["Statement"][0]["Action"] = [
        "sts:AssumeRole",
        "sts:TagSession",
    ]
    alice = dev["users"]["alice"]["policies"]["assume-roles"]["Statement"][0]
    alice["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    path = folder / "demo-tagging.yaml"
    path.write_text(yaml.safe_dump(variant, sort_keys=False))
    return path


@dataclass(frozen=True)
class MicroReport:
    timings: list[Timing]
    token_sizes: dict[str, int]
    packed_policy_size_percent: int | None


def _secret_of(config_path: Path, key_id: str) -> str:
    """alice's demo secret, read from the config rather than copied into the bench."""
    directory = Directory.build(load_config(config_path))
    return directory.keys[key_id].secret


def run_micro(demo: Path, *, batch_s: float = 0.1) -> MicroReport:
    """Time each stage of a request in-process and mint the two sessions whose size we report."""
    config = load_config(demo)
    directory = Directory.build(config)
    sealer = TokenSealer([("bench", os.urandom(32))])
    model = StsModel.load()
    engine = StsEngine(
        directory=directory, sealer=sealer, store=MemoryStore(SystemClock()), region=REGION
    )
    secret = directory.keys[ALICE_KEY].secret

    def now() -> float:
        return time.time()

    gci = signed_parts(GCI_BODY, ALICE_KEY, secret)
    alice: Caller = authenticate(gci, directory=directory, sealer=sealer, now=now(), region=REGION)
    info = RequestInfo(now=now(), source_ip="127.0.0.1", secure=False)

    plain_params = assume_role_params(model, with_policy_and_tags=False)
    plain = run_sync(engine.assume_role(plain_params, alice, info))
    creds = plain["Credentials"]
    plain_claims, _ = sealer.open(creds["SessionToken"])
    temp_gci = signed_parts(
        GCI_BODY, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    )

    with tempfile.TemporaryDirectory() as folder:
        tagging = load_config(_tagging_config(demo, Path(folder)))
    tag_directory = Directory.build(tagging)
    tag_engine = StsEngine(
        directory=tag_directory,
        sealer=sealer,
        store=MemoryStore(SystemClock()),
        region=REGION,
    )
    tag_alice = authenticate(
        gci, directory=tag_directory, sealer=sealer, now=now(), region=REGION
    )
    big_params = assume_role_params(model, with_policy_and_tags=True)
    big = run_sync(tag_engine.assume_role(big_params, tag_alice, info))
    big_claims, _ = sealer.open(big["Credentials"]["SessionToken"])

    role = directory.role(DEV_ROLE)
    assert role is not None
    context = alice.context(now=info.now, source_ip=info.source_ip, secure=False, region=REGION)
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
        verify_signature(claim, secret, now=now(), region=REGION)

    def auth_temp() -> None:
        authenticate(temp_gci, directory=directory, sealer=sealer, now=now(), region=REGION)

    plain_token = creds["SessionToken"]
    big_token = big["Credentials"]["SessionToken"]
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
        (
            "StsEngine.assume_role (whole action, no HTTP)",
            lambda: run_sync(engine.assume_role(plain_params, alice, info)),
        ),
    ]
    timings = [time_op(name, fn, batch_s=batch_s) for name, fn in ops]
    sizes = {
        "plain AssumeRole (in-process)": len(plain_token),
        f"AssumeRole + {POLICY_CHARS}-char policy + {len(TAGS)} tags": len(big_token),
    }
    packed = big.get("PackedPolicySize")
    return MicroReport(timings=timings, token_sizes=sizes, packed_policy_size_percent=packed)


def token_sizes_of(result: Mapping[str, Any]) -> int:
    """Bytes of the session token in an AssumeRole result (ASCII, so chars == bytes)."""
    return len(result["Credentials"]["SessionToken"].encode())
