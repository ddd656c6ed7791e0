"""AssumeRoleWithSAML bench inputs and the in-process comparison with pysaml2's stock SP path.

Usage (the in-process half alone; ``bench/run.py --only saml`` runs it with the HTTP half)::

    .venv/bin/python bench/saml.py [--pool N] [--baseline-ops N]

The SAML issue asks for assertions verified per second and AssumeRoleWithSAML requests/s
beside pysaml2's stock ``parse_authn_request_response`` (signatures checked by the
``xmlsec1`` binary, its default crypto backend) on the same assertions, in the same run,
with a target of at least 50 times pysaml2's throughput.

Inputs, all offline: a fixture IdP (``idp_fixtures.saml.SamlIdp``, RSA-2048, its metadata
written to a file the provider's ``metadata_file`` points at, so nothing is fetched) and a
pool of distinct responses shaped like Okta's AWS app (Response *and* Assertion signed,
RSA-SHA256, exclusive c14n), built before anything is timed. Every response names a
fixed-width user (``bench-user-NNNNN``) so every answer has the same size as the bare-form
copy of one. The provider is not ``single_use`` (``single_use: false``): the pool is
replayed, as the web identity pool is.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, urlencode

import saml2.sigver
import yaml
from saml2 import BINDING_HTTP_POST
from saml2.client import Saml2Client
from saml2.config import SPConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for entry in (str(ROOT), str(HERE)):  # repo for `broker`/`idp_fixtures`, bench/ for siblings
    if entry not in sys.path:
        sys.path.insert(0, entry)

from micro import Timing, asgi_post, time_asgi, time_async, unsigned_parts  # noqa: E402
from server import bare_form_app  # noqa: E402

from broker.app import create_app  # noqa: E402
from broker.clock import SystemClock  # noqa: E402
from broker.config import load_config  # noqa: E402
from broker.errors import StsError  # noqa: E402
from broker.identity import SamlVerifier  # noqa: E402
from idp_fixtures.saml import SamlIdp, SamlUser  # noqa: E402
from idp_fixtures.saml.presets import okta  # noqa: E402

ACCOUNT = "111111111111"
PROVIDER_NAME = "Corp"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:saml-provider/{PROVIDER_NAME}"
ROLE_NAME = "SamlBench"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
PUBLIC_URL = "http://127.0.0.1:8080"
SP_ENTITY_ID = f"{PUBLIC_URL}/saml/metadata"
ACS_URL = f"{PUBLIC_URL}/saml/acs"
IDP_ENTITY_ID = "https://bench-idp.example.com/saml"
LIFETIME_S = 3600
"""Validity of each pooled response: far longer than a run, so replaying it stays valid."""
EXPECT = b"<Subject>bench-user-"
"""What every AssumeRoleWithSAML answer (and the bare-form copy of one) must contain."""
TOKEN_PARAM = "SAMLAssertion"
MICRO_POOL = 64
"""Distinct responses cycled through by the in-process timings."""
BASELINE_OPS = 30
"""pysaml2 calls timed: ~60 ms each, so a bounded number keeps the suite short."""
TARGET = 50.0
"""The SAML issue's target: at least 50 x pysaml2's assertions verified per second."""
XMLSEC_MISSING = (
    "pysaml2 baseline: the xmlsec1 binary is not installed (pysaml2's default crypto "
    "backend runs it); install it with `apt-get install xmlsec1` and run again"
)


def user_name(index: int) -> str:
    """Fixed width, so every answer (which echoes it) has the same size."""
    return f"bench-user-{index:05d}"


@dataclass
class BenchIdp:
    """The fixture IdP plus what the bench needs of it: a metadata file and a response pool."""

    idp: SamlIdp = field(default_factory=lambda: SamlIdp(IDP_ENTITY_ID))

    def write_metadata(self, path: Path) -> Path:
        path.write_bytes(self.idp.metadata())
        return path

    def response(self, index: int, *, now: float | None = None) -> str:
        """One Okta-shaped response (Response + Assertion signed), base64, for the SP."""
        name = user_name(index)
        return okta(
            self.idp,
            user=SamlUser(name, email=f"{name}@example.com"),
            sp_entity_id=SP_ENTITY_ID,
            acs_url=ACS_URL,
            roles=((ROLE_ARN, PROVIDER_ARN),),
            session_name=name,
            lifetime=LIFETIME_S,
            issued_at=now,
        )

    def responses(self, count: int) -> list[str]:
        """``count`` distinct signed responses (distinct IDs, users, signatures)."""
        now = time.time()
        return [self.response(i, now=now) for i in range(count)]


def add_saml(data: dict[str, Any], metadata: Path) -> dict[str, Any]:
    """A copy of a parsed config with the ``Corp`` provider and the ``SamlBench`` role.

    ``public_url`` is pinned to http://127.0.0.1:8080: the SP entity ID and ACS URL the
    responses are addressed to derive from it (the server's real port does not matter to
    the API path). ``single_use: false`` because the pool is replayed.
    """
    variant = copy.deepcopy(data)
    variant["public_url"] = PUBLIC_URL
    account = variant["accounts"][ACCOUNT]
    account.setdefault("saml_providers", {})[PROVIDER_NAME] = {
        "metadata_file": str(metadata.resolve()),
        "single_use": False,
    }
    account.setdefault("roles", {})[ROLE_NAME] = {
        "description": "AssumeRoleWithSAML bench role.",
        "trust_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": PROVIDER_ARN},
                    "Action": "sts:AssumeRoleWithSAML",
                }
            ],
        },
        "managed_policies": ["ReadOnlyAccess"],
    }
    return variant


def write_config(demo: Path, folder: Path, bench_idp: BenchIdp) -> Path:
    """config/demo.yaml plus the SAML provider, written to ``folder`` for a server process."""
    metadata = bench_idp.write_metadata(folder / "bench-idp-metadata.xml")
    data = add_saml(yaml.safe_load(demo.read_text()), metadata)
    path = folder / "demo-saml.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def request_body(saml_response: str) -> str:
    """The unsigned form body an AWS SDK posts for AssumeRoleWithSAML."""
    params = {
        "Action": "AssumeRoleWithSAML",
        "Version": "2011-06-15",
        "RoleArn": ROLE_ARN,
        "PrincipalArn": PROVIDER_ARN,
        "SAMLAssertion": saml_response,
    }
    return urlencode(params, quote_via=quote, safe="-_.~")


def tampered(saml_response: str) -> str:
    """The same response with the NameID and session name changed after signing."""
    xml = base64.b64decode(saml_response)
    return base64.b64encode(xml.replace(b"bench-user-00000", b"bench-user-99999")).decode()


# --------------------------------------------------------------------------- pysaml2


class BaselineUnavailable(RuntimeError):
    """pysaml2's stock path cannot run here (no xmlsec1 binary)."""


def xmlsec1_version(binary: str) -> str:
    done = subprocess.run(
        [binary, "--version"], check=False, capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip() or done.stderr.strip()


def pysaml2_client(metadata: Path) -> Any:
    """A stock ``Saml2Client``: this SP, the IdP's metadata file, xmlsec1 as crypto backend.

    ``allow_unsolicited`` because the pooled responses answer no AuthnRequest (as with
    AssumeRoleWithSAML); signed assertions *and* responses wanted, as the broker checks
    both signatures Okta makes.
    """
    binary = shutil.which("xmlsec1")
    if binary is None:
        raise BaselineUnavailable(XMLSEC_MISSING)
    config = SPConfig()
    config.load(
        {
            "entityid": SP_ENTITY_ID,
            "xmlsec_binary": binary,
            "metadata": {"local": [str(metadata)]},
            "service": {
                "sp": {
                    "endpoints": {"assertion_consumer_service": [(ACS_URL, BINDING_HTTP_POST)]},
                    "allow_unsolicited": True,
                    "want_assertions_signed": True,
                    "want_response_signed": True,
                }
            },
        }
    )
    client = Saml2Client(config)
    backend = type(client.sec.crypto).__name__
    if backend != "CryptoBackendXmlSec1":
        raise BaselineUnavailable(f"pysaml2 baseline: crypto backend is {backend}, not xmlsec1")
    return client


def pysaml2_parse(client: Any, saml_response: str) -> Any:
    return client.parse_authn_request_response(saml_response, BINDING_HTTP_POST)


def xmlsec1_runs_per_response(client: Any, saml_response: str) -> tuple[int, int]:
    """xmlsec1 processes one ``parse_authn_request_response`` starts (untimed): how many
    ``--verify`` runs, and how many others (pysaml2 7.5 also runs ``xmlsec1 --version``
    around each verification)."""
    real = saml2.sigver.Popen
    verify = other = 0

    def counting(command: Sequence[str], *args: Any, **kwargs: Any) -> Any:
        nonlocal verify, other
        if "--verify" in command:
            verify += 1
        else:
            other += 1
        return real(command, *args, **kwargs)

    with mock.patch.object(saml2.sigver, "Popen", counting):
        pysaml2_parse(client, saml_response)
    return verify, other


# --------------------------------------------------------------------------- micro


@dataclass
class SamlMicro:
    """The in-process SAML figures and the verdict against pysaml2."""

    timings: list[Timing]
    broker: Timing
    baseline_ops: int = 0
    baseline_median_us: float | None = None
    baseline_mean_us: float | None = None
    baseline_best_us: float | None = None
    baseline_error: str | None = None
    xmlsec1: str | None = None
    xmlsec1_runs: tuple[int, int] | None = None
    """(``--verify`` runs, other runs) per response."""
    response_bytes: int = 0
    request_bytes: int = 0

    @property
    def broker_ops(self) -> float:
        return 1e6 / self.broker.median_us

    @property
    def baseline_ops_per_s(self) -> float | None:
        return 1e6 / self.baseline_median_us if self.baseline_median_us else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline_ops_per_s
        return self.broker_ops / base if base else None

    def verdict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "target_ratio": TARGET,
            "broker_verify_us": round(self.broker.median_us, 1),
            "broker_verify_ops_per_s": round(self.broker_ops, 1),
            "pysaml2_ops": self.baseline_ops,
            "pysaml2_median_us": None
            if self.baseline_median_us is None
            else round(self.baseline_median_us, 1),
            "pysaml2_mean_us": None
            if self.baseline_mean_us is None
            else round(self.baseline_mean_us, 1),
            "pysaml2_ops_per_s": None
            if self.baseline_ops_per_s is None
            else round(self.baseline_ops_per_s, 2),
            "xmlsec1": self.xmlsec1,
            "xmlsec1_verify_runs_per_response": self.xmlsec1_runs and self.xmlsec1_runs[0],
            "xmlsec1_other_runs_per_response": self.xmlsec1_runs and self.xmlsec1_runs[1],
            "ratio": None if ratio is None else round(ratio, 1),
            "met": None if ratio is None else ratio >= TARGET,
            "margin_pct": None if ratio is None else round((ratio / TARGET - 1) * 100, 1),
            "error": self.baseline_error,
        }


@contextlib.contextmanager
def quiet_startup() -> Iterator[None]:
    """Keep the broker's start-up warnings (ephemeral token key, ephemeral SP key pair,
    both expected for a bench config) out of the table."""
    logger = logging.getLogger("broker")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _expect_refused(name: str, call: Callable[[], object]) -> None:
    """Sanity: a tampered response must be refused, or the timing proves nothing.

    pysaml2 logs xmlsec1's complaint at ERROR; that expected refusal is kept quiet.
    """
    logger = logging.getLogger("saml2")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        call()
    except Exception:  # any refusal will do (pysaml2 raises many kinds)
        return
    finally:
        logger.setLevel(level)
    raise RuntimeError(f"{name} accepted a tampered SAML response: the bench is broken")


def _time_pysaml2(client: Any, responses: Sequence[str], ops: int) -> list[float]:
    """Per-call µs of ``ops`` distinct responses, each parsed once (one untimed warm-up)."""
    first = pysaml2_parse(client, responses[0])
    if first.assertion is None or first.name_id.text != user_name(0):
        raise RuntimeError("pysaml2 did not return the expected assertion")
    spent: list[float] = []
    for i in range(1, ops + 1):
        saml_response = responses[i % len(responses)]
        start = time.perf_counter_ns()
        pysaml2_parse(client, saml_response)
        spent.append((time.perf_counter_ns() - start) / 1000)
    return spent


def run_saml_micro(
    demo: Path,
    *,
    batch_s: float = 0.1,
    pool: int = MICRO_POOL,
    baseline_ops: int = BASELINE_OPS,
) -> SamlMicro:
    """Broker verification, the whole request without HTTP, and pysaml2, on one pool.

    The broker figure is :class:`SamlVerifier` ``verify`` awaited in a loop over ``pool``
    distinct responses (median of 5 batches of ~``batch_s``); pysaml2's is the median of
    ``baseline_ops`` calls on responses from the same pool. If xmlsec1 is missing the
    broker figures are still measured and ``baseline_error`` says why there is no ratio.
    """
    with tempfile.TemporaryDirectory() as name:
        return _run_saml_micro(demo, Path(name), batch_s, pool, baseline_ops)


def _run_saml_micro(
    demo: Path, folder: Path, batch_s: float, pool: int, baseline_ops: int
) -> SamlMicro:
    bench_idp = BenchIdp()
    config_path = write_config(demo, folder, bench_idp)
    config = load_config(config_path)
    responses = bench_idp.responses(max(pool, baseline_ops + 1))
    with quiet_startup():
        verifier = SamlVerifier(config, SystemClock())
        app = create_app(config)

    async def verify(i: int) -> None:
        await verifier.verify(responses[i % len(responses)], provider_arn=PROVIDER_ARN, api=True)

    async def check() -> None:
        identity = await verifier.verify(responses[0], provider_arn=PROVIDER_ARN, api=True)
        if identity.subject != user_name(0) or identity.single_use:
            raise RuntimeError(f"unexpected SAML identity: {identity.subject}")
        try:
            await verifier.verify(tampered(responses[0]), provider_arn=PROVIDER_ARN, api=True)
        except StsError:
            return
        raise RuntimeError("the broker accepted a tampered SAML response: the bench is broken")

    requests = [unsigned_parts(request_body(r)) for r in responses]
    status, answer = asyncio.run(asgi_post(app, requests[0]))
    if status != 200 or EXPECT not in answer:
        raise RuntimeError(f"in-process AssumeRoleWithSAML refused: {answer[:300]!r}")
    try:
        asyncio.run(check())
        broker = time_async(
            "SamlVerifier.verify (Okta shape, 2 RSA-SHA256 sigs)", verify, batch_s=batch_s
        )
        timings = [
            broker,
            time_asgi(
                "ASGI, no HTTP: bare-form app (SAML body)",
                bare_form_app(answer, token_param=TOKEN_PARAM),
                requests,
                batch_s=batch_s,
                expect=EXPECT,
            ),
            time_asgi(
                "ASGI, no HTTP: broker AssumeRoleWithSAML",
                app,
                requests,
                batch_s=batch_s,
                expect=EXPECT,
            ),
        ]
    finally:
        asyncio.run(verifier.aclose())
    result = SamlMicro(
        timings=timings,
        broker=broker,
        response_bytes=len(responses[0]),
        request_bytes=len(requests[0].body),
    )
    try:
        client = pysaml2_client(config_path.parent / "bench-idp-metadata.xml")
    except BaselineUnavailable as exc:
        result.baseline_error = str(exc)
        return result
    binary = shutil.which("xmlsec1")
    assert binary is not None
    result.xmlsec1 = xmlsec1_version(binary)
    _expect_refused("pysaml2", lambda: pysaml2_parse(client, tampered(responses[0])))
    result.xmlsec1_runs = xmlsec1_runs_per_response(client, responses[-1])
    spent = _time_pysaml2(client, responses, baseline_ops)
    result.baseline_ops = len(spent)
    result.baseline_median_us = statistics.median(spent)
    result.baseline_mean_us = statistics.fmean(spent)
    result.baseline_best_us = min(spent)
    return result


def print_saml_micro(report: SamlMicro) -> None:
    """The comparison block and the verdict (the timings rows are printed with the others)."""
    print(
        f"\nSAML, in-process, the same Okta-shaped responses (Response + Assertion signed, "
        f"RSA-2048/SHA-256; {report.response_bytes}-char base64)"
    )
    print(
        f"  broker SamlVerifier.verify                 {report.broker.median_us / 1000:>8.3f} "
        f"ms/op {report.broker_ops:>9.1f} ops/s  (median of 5 batches, "
        f"{report.broker.iterations} ops)"
    )
    if report.baseline_error is not None:
        print(f"  pysaml2 parse_authn_request_response      FAILED: {report.baseline_error}")
        print(f"\nTarget (SAML verify >= {TARGET:g} x pysaml2): NOT MEASURED (see above)")
        return
    assert report.baseline_median_us is not None and report.baseline_ops_per_s is not None
    print(
        f"  pysaml2 parse_authn_request_response       {report.baseline_median_us / 1000:>8.3f} "
        f"ms/op {report.baseline_ops_per_s:>9.1f} ops/s  (median of {report.baseline_ops} ops; "
        f"mean {report.baseline_mean_us / 1000 if report.baseline_mean_us else 0:.1f} ms, "
        f"best {report.baseline_best_us / 1000 if report.baseline_best_us else 0:.1f} ms; "
        f"{report.xmlsec1})"
    )
    if report.xmlsec1_runs is not None:
        runs, other = report.xmlsec1_runs
        print(
            f"    pysaml2 starts {runs + other} xmlsec1 processes per response: {runs} "
            f"--verify (one per signature), {other} --version"
        )
    verdict = report.verdict()
    met = "met" if verdict["met"] else "NOT met"
    print(
        f"\nTarget (SAML assertions verified/s >= {TARGET:g} x pysaml2): {met}, ratio "
        f"{verdict['ratio']:.1f}x ({verdict['margin_pct']:+.0f}% vs target)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=MICRO_POOL, help="distinct responses")
    parser.add_argument(
        "--baseline-ops", type=int, default=BASELINE_OPS, help="pysaml2 calls timed"
    )
    args = parser.parse_args(argv)
    if args.pool < 1 or not 1 <= args.baseline_ops <= 1000:
        parser.error("--pool must be positive, --baseline-ops 1..1000")
    report = run_saml_micro(
        ROOT / "config" / "demo.yaml", pool=args.pool, baseline_ops=args.baseline_ops
    )
    print("In-process, per call (median of 5 batches; best in brackets)")
    width = max(len(t.name) for t in report.timings)
    for t in report.timings:
        print(f"  {t.name:<{width}} {t.median_us:>9.2f} µs/op  [{t.best_us:.2f}]")
    print_saml_micro(report)
    return 1 if report.baseline_error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
