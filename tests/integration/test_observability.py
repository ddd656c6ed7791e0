"""Metrics, readiness, the admin listener and the audit file, against a live broker.

``/metrics`` is read with prometheus_client's own text parser after real boto3 calls, and
its counters must move by exactly the calls made; ``/readyz`` follows a real OIDC issuer
(idp_fixtures, its own server) through an outage past the last-known-good window and
back; the admin listener is a second socket of the same server; the audit file's lines
are checked against docs/audit-event.schema.json.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import jsonschema
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from broker.app import ROUTE_FAMILIES, ROUTE_PREFIXES
from broker.sts.model import StsModel
from idp_fixtures import serve_in_thread
from tests.integration.conftest import (
    DEV,
    OffsetClock,
    _key,
    free_port,
    serve_process,
    write_config,
)
from tests.integration.observed import Observed, api_calls, observed_broker

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "audit-event.schema.json").read_text())
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``/metrics``, parsed by prometheus_client's parser."""
    answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    folder = tmp_path_factory.mktemp("observed")
    with observed_broker(folder, audit={"file": "audit.jsonl"}) as running:
        yield running


def test_metrics_parse_and_count_exactly_the_calls_made(observed: Observed) -> None:
    broker = observed.broker
    before = scrape(broker.url)
    made = api_calls(broker)
    after = scrape(broker.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "sts_broker_requests_total"
    assert delta(requests, action="AssumeRole", code="Success") == made["AssumeRole"] - 1
    assert delta(requests, action="AssumeRole", code="AccessDenied") == 1
    assert delta(requests, action="GetCallerIdentity", code="SignatureDoesNotMatch") == 1
    assert delta(requests, action="GetCallerIdentity", code="Success") == 2
    assert delta(requests, action="GetSessionToken", code="Success") == 1
    assert delta(requests, action="AssumeRoleWithWebIdentity", code="InvalidIdentityToken") == 1
    assert delta(requests, action="console", code="Success") == 2  # getSigninToken, login
    assert delta(requests, action="console", code="HTTP400") == 1
    sts_calls = sum(made.values())
    histogram = sum(
        value(after, "sts_broker_request_duration_seconds_count", action=a)
        - value(before, "sts_broker_request_duration_seconds_count", action=a)
        for a in made
    )
    assert histogram == sts_calls
    # The MFA code was claimed in the store (SQLite here), once, without error.
    assert (
        delta(
            "sts_broker_store_operation_duration_seconds_count", backend="sqlite", operation="claim"
        )
        == 1
    )
    assert delta("sts_broker_store_errors_total", backend="sqlite", operation="claim") == 0
    assert value(after, "sts_broker_info", version="0.1.0") == 1


def test_metrics_carry_no_key_ids_subjects_or_unknown_actions(observed: Observed) -> None:
    broker = observed.broker
    # An action nobody knows, with a key ID in it: neither may become a label value.
    httpx.post(
        broker.url, data={"Action": f"Steal{broker.keys['alice'].id}", "Version": "2011-06-15"}
    )
    samples = scrape(broker.url)
    values = {v for _, labels in samples for _, v in labels}
    assert not [v for v in values if re.search(r"(AKIA|ASIA)[A-Z0-9]{16}", v)]
    assert not [v for v in values if "alice" in v or "Steal" in v]
    assert value(samples, "sts_broker_requests_total", action="Unknown", code="InvalidAction") >= 1
    actions = {
        dict(labels).get("action")
        for name, labels in samples
        if name == "sts_broker_requests_total"
    }
    # The route families are the app's own table (bounded: a new route must be added there).
    families = set(ROUTE_FAMILIES.values()) | {family for _, family in ROUTE_PREFIXES}
    # The registry is the process's: earlier tests' calls count too, all bounded the same way.
    allowed = families | {"Unknown", "static", "demo", "other"} | StsModel.load().actions()
    assert actions <= allowed, actions - allowed


def test_the_audit_file_has_one_valid_event_per_call(observed: Observed) -> None:
    broker = observed.broker
    path = broker.config_path.parent / "audit.jsonl"
    start = len(path.read_text().splitlines()) if path.exists() else 0
    made = api_calls(broker)
    lines = path.read_text().splitlines()[start:]
    events = [json.loads(line) for line in lines]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for event in events:
        validator.validate(event)
    sts = [e for e in events if e["eventSource"] == "sts.amazonaws.com"]
    assert len(sts) == sum(made.values())
    assert {e["eventName"] for e in events} >= {"GetSigninToken", "ConsoleLogin"}
    assert (path.stat().st_mode & 0o777) == 0o600
    mfa = next(e for e in sts if e["eventName"] == "GetSessionToken")
    assert mfa["userIdentity"]["type"] == "IAMUser"
    assert mfa["userIdentity"]["accessKeyId"] == broker.keys["alice"].id
    assert mfa["requestParameters"] == {"serialNumber": f"arn:aws:iam::{DEV}:mfa/alice"}
    assert set(mfa["responseElements"]["credentials"]) == {"accessKeyId", "expiration"}
    chained = next(
        e
        for e in sts
        if e["eventName"] == "AssumeRole"
        and e["userIdentity"]["type"] == "IAMUser"
        and e["requestParameters"]["roleSessionName"] == "alice-mfa"
    )
    assert chained["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"
    assert chained["requestParameters"]["tags"] == [{"key": "project", "value": "audit"}]
    assert chained["recipientAccountId"] == "222222222222"
    assert chained["resources"][0]["type"] == "AWS::IAM::Role"
    denied = next(e for e in sts if e.get("errorCode") == "AccessDenied")
    assert denied["responseElements"] is None and "not authorized" in denied["errorMessage"]
    forged = next(e for e in sts if e.get("errorCode") == "SignatureDoesNotMatch")
    assert forged["userIdentity"] == {"type": "Unknown", "accessKeyId": broker.keys["alice"].id}
    answered = {e["requestID"] for e in sts}
    assert len(answered) == len(sts)  # one event per call, each with its own request ID


# --------------------------------------------------------------------------- admin port


def test_the_admin_listener_serves_metrics_and_readiness_and_the_public_port_does_not(
    tmp_path: Path,
) -> None:
    with observed_broker(tmp_path, admin=True) as running:
        public, admin = running.broker.url, running.admin_url
        assert admin is not None
        running.broker.sts("alice").get_caller_identity()
        assert httpx.get(f"{public}/metrics").status_code == 404
        assert httpx.get(f"{public}/readyz").status_code == 404
        assert httpx.get(f"{public}/healthz").json()["status"] == "ok"
        assert httpx.get(f"{admin}/healthz").status_code == 200
        ready = httpx.get(f"{admin}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == [{"check": "store", "target": "sqlite", "ok": True}]
        samples = scrape(admin)
        assert (
            value(samples, "sts_broker_requests_total", action="GetCallerIdentity", code="Success")
            >= 1
        )
        # The admin port is not a second way into the broker.
        assert httpx.post(admin, data={"Action": "GetCallerIdentity"}).status_code == 404
        assert httpx.get(f"{admin}/roles").status_code == 404
        # Scrapes and probes on the admin port are not counted as traffic (the registry is
        # the process's: compare two scrapes with a probe between them).
        admin_count = (
            "sts_broker_requests_total",
            frozenset({("action", "admin"), ("code", "Success")}),
        )
        before = scrape(admin).get(admin_count, 0.0)
        httpx.get(f"{admin}/readyz")
        assert scrape(admin).get(admin_count, 0.0) == before


# --------------------------------------------------------------------------- readiness


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=10)


def test_readyz_fails_when_issuer_keys_expire_past_last_known_good_and_recovers(
    tmp_path: Path,
) -> None:
    clock = OffsetClock()
    settings: dict[str, Any] = {
        "oidc": {
            "jwks_ttl_seconds": 60,
            "refresh_interval_seconds": 1,
            "last_known_good_seconds": 60,
        }
    }
    with ExitStack() as stack:
        first_server = ExitStack()
        server = first_server.enter_context(serve_in_thread("127.0.0.1", 0))
        stack.callback(first_server.close)
        server.add_issuer("ready")
        issuer = f"{server.url}/ready"
        port = int(server.url.rsplit(":", 1)[1])

        def trust(document: dict[str, Any]) -> None:
            document["accounts"][DEV]["oidc_providers"] = [{"url": issuer, "client_ids": ["c"]}]

        running = stack.enter_context(
            observed_broker(tmp_path, clock=clock, edit=trust, **settings)
        )
        url = running.broker.url
        first = _ready(url)
        assert first.status_code == 200, first.text
        assert {"check": "oidc_keys", "target": issuer, "ok": True} in first.json()["checks"]
        samples = scrape(url)
        fetches = "sts_broker_idp_fetches_total"
        assert value(samples, fetches, kind="oidc_jwks", idp=issuer, outcome="success") == 1
        assert value(samples, fetches, kind="oidc_discovery", idp=issuer, outcome="success") == 1
        age = value(samples, "sts_broker_idp_keys_age_seconds", kind="oidc_jwks", idp=issuer)
        assert 0 <= age < 30

        first_server.close()  # the issuer goes away: discovery and JWKS unreachable
        clock.offset += 90  # stale (60 s) but within last-known-good (60 s more): still ready
        assert _ready(url).status_code == 200
        clock.offset += 40  # 130 s after the fetch: past the window
        down = _ready(url)
        assert down.status_code == 503, down.text
        body = down.json()
        assert body["status"] == "not ready"
        assert body["failed"] == [f"oidc_keys {issuer}"]
        failed = next(c for c in body["checks"] if c["check"] == "oidc_keys")
        assert "Couldn't retrieve verification key" in failed["reason"]
        assert "ConnectError" in failed["reason"]
        samples = scrape(url)
        assert value(samples, fetches, kind="oidc_jwks", idp=issuer, outcome="failure") >= 1
        assert (
            value(samples, "sts_broker_idp_keys_age_seconds", kind="oidc_jwks", idp=issuer) >= 130
        )

        back = stack.enter_context(serve_in_thread("127.0.0.1", port))  # it returns, new keys
        back.add_issuer("ready")
        deadline = time.monotonic() + 20
        while (answer := _ready(url)).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            clock.offset += 1  # past the refresh interval, so the next probe refetches
        assert answer.json()["failed"] == []


# --------------------------------------------------------------------------- sts-broker serve


def _serve_config(folder: Path, **settings: Any) -> tuple[Path, dict[str, Any]]:
    """The integration config with ``settings`` added, for a real ``sts-broker serve``."""
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    path = folder / "broker.yaml"
    seed = base64.b32encode(os.urandom(20)).decode()
    write_config(path, keys, {"alice": seed}, "http://127.0.0.1:1")
    document = yaml.safe_load(path.read_text())
    document.update(settings)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path, keys


def test_serve_writes_json_logs_and_audit_lines_and_listens_on_the_admin_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command: ``log_format: json``, ``audit.stdout`` and ``admin_listen``."""
    admin_port = free_port()
    path, keys = _serve_config(
        tmp_path, log_format="json", audit={"stdout": True}, admin_listen=f"127.0.0.1:{admin_port}"
    )
    monkeypatch.setenv("TEST_TOKEN_KEY", base64.b64encode(os.urandom(32)).decode())
    admin = f"http://127.0.0.1:{admin_port}"
    with serve_process([sys.executable, "-m", "broker", "serve", str(path)]) as served:
        sts = boto3.client(
            "sts",
            endpoint_url=served.url,
            region_name="us-east-1",
            aws_access_key_id=keys["alice"].id,
            aws_secret_access_key=keys["alice"].secret,
        )
        sts.get_caller_identity()
        assert httpx.get(f"{served.url}/metrics").status_code == 404
        assert (
            value(
                scrape(admin),
                "sts_broker_requests_total",
                action="GetCallerIdentity",
                code="Success",
            )
            == 1
        )
        assert httpx.get(f"{admin}/readyz").json()["status"] == "ready"
    lines = [json.loads(line) for line in served.output.splitlines() if line.strip()]
    audit = [line for line in lines if "eventVersion" in line]
    logs = [line for line in lines if "eventVersion" not in line]
    assert [e["eventName"] for e in audit] == ["GetCallerIdentity"]
    jsonschema.Draft202012Validator(SCHEMA).validate(audit[0])
    assert all({"time", "level", "logger", "message"} <= set(line) for line in logs), logs
    assert any(line["logger"] == "uvicorn.error" for line in logs)  # uvicorn's own, as JSON
    access = next(line for line in logs if line["logger"] == "broker.access")
    # One request ID joins the answer, the access log line and the audit event.
    assert access["requestId"] == audit[0]["requestID"]
    assert access["message"].startswith(audit[0]["requestID"])


def test_serve_refuses_an_admin_listen_on_the_public_port(tmp_path: Path) -> None:
    port = free_port()
    path, _ = _serve_config(tmp_path, admin_listen=f"127.0.0.1:{port}")
    done = subprocess.run(
        [sys.executable, "-m", "broker", "serve", str(path), "--port", str(port)],
        env={**os.environ, "TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"admin_listen 127.0.0.1:{port} uses the public port {port}" in done.stderr
