"""Metrics, readiness, audit sinks, JSON logs and their config keys, piece by piece.

The live behaviour (counters moving with boto3 calls, /readyz through an outage, two
workers) is in tests/integration/test_observability.py and test_metrics_workers.py; here
each part's own rules: bounded labels, the model's action list, the derived key age, the
store wrapper on a dead Redis, the sinks' files and failures, the allow-lists that keep
secrets out of events, the log line shape, and the config mistakes.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.clock import FrozenClock
from broker.observability import (
    AuditTrail,
    Check,
    RequestFacts,
    count_throttled,
    exposition,
    prepare_multiprocess_dir,
    readiness,
    record_idp_fetch,
    subscribe,
)
from broker.observability.audit import DescriptorSink, FileSink
from broker.observability.context import begin_request, end_request, note_outcome
from broker.observability.http import RequestMetrics
from broker.observability.logs import JsonFormatter, configure_logging
from broker.observability.metrics import MULTIPROC_ENV, OTHER, BoundedLabel
from broker.store import MemoryStore, MeteredStore, RedisStore, StoreUnavailableError
from broker.sts.audit import request_parameters, response_elements
from tests.unit.test_config import MINIMAL, one_problem

NOW = 1_800_000_000.0
USABLE = MINIMAL.replace(
    "Statement: []",
    'Statement: [{Effect: Allow, Principal: {AWS: "111111111111"}, Action: "sts:AssumeRole"}]',
)


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


# --------------------------------------------------------------------------- labels


def test_a_bounded_label_admits_only_its_limit_of_safe_values() -> None:
    label = BoundedLabel(3)
    assert [label(v) for v in ("a", "b", "a", "c", "d", "b")] == ["a", "b", "a", "c", OTHER, "b"]
    fresh = BoundedLabel(10)
    assert fresh("has space") == OTHER
    assert fresh('quote"d') == OTHER
    assert fresh("x" * 201) == OTHER
    assert fresh("https://idp.example.com/realm") == "https://idp.example.com/realm"


def test_throttled_requests_are_counted_by_action_and_scope() -> None:
    before = samples(exposition(NOW))
    count_throttled("AssumeRole", "principal")
    count_throttled("signin", "source_ip")
    count_throttled("AssumeRole", "nonsense")  # type: ignore[arg-type]
    after = samples(exposition(NOW))
    name = "sts_broker_throttled_requests_total"
    for action, scope in (
        ("AssumeRole", "principal"),
        ("signin", "source_ip"),
        ("AssumeRole", OTHER),
    ):
        key = (name, frozenset({("action", action), ("scope", scope)}))
        assert after[key] - before.get(key, 0.0) == 1


def test_key_age_is_derived_at_scrape_time_from_the_last_successful_fetch() -> None:
    idp = "https://age.example.com/issuer"
    record_idp_fetch("oidc_jwks", idp, ok=True, at=NOW)
    record_idp_fetch("oidc_jwks", idp, ok=False, at=NOW + 50)
    found = samples(exposition(NOW + 120))
    labels = frozenset({("kind", "oidc_jwks"), ("idp", idp)})
    assert found[("sts_broker_idp_keys_age_seconds", labels)] == 120
    assert found[("sts_broker_idp_keys_fetched_timestamp_seconds", labels)] == NOW
    outcome = frozenset({*labels, ("outcome", "failure")})
    assert found[("sts_broker_idp_fetches_total", outcome)] >= 1


def test_route_families_are_exact_paths_then_prefixes() -> None:
    metrics = RequestMetrics(
        lambda *_: None,  # type: ignore[arg-type,return-value]
        exact={"/": "pages", "/metrics": "admin"},
        prefixes=(("/saml/", "saml"), ("/console", "console")),
    )
    assert metrics.family("/") == "pages"
    assert metrics.family("/saml/acs") == "saml"
    assert metrics.family("/console/logout") == "console"
    assert metrics.family("/../../etc/passwd") == "other"


def test_multiprocess_dir_is_made_for_workers_and_cleaned_of_a_previous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # restored (to unset) after the test
    monkeypatch.delenv(MULTIPROC_ENV)
    assert prepare_multiprocess_dir(1) is None
    assert MULTIPROC_ENV not in os.environ
    made = prepare_multiprocess_dir(2)
    assert made is not None and made.is_dir() and os.environ[MULTIPROC_ENV] == str(made)
    made.rmdir()
    named = tmp_path / "metrics"
    monkeypatch.setenv(MULTIPROC_ENV, str(named))
    named.mkdir()
    (named / "counter_123.db").write_bytes(b"old")
    (named / "keep.txt").write_text("not ours")
    assert prepare_multiprocess_dir(1) == named
    assert sorted(p.name for p in named.iterdir()) == ["keep.txt"]


# --------------------------------------------------------------------------- the store


def test_the_store_wrapper_times_calls_and_counts_failures_on_a_dead_redis() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    store = MeteredStore(
        RedisStore(f"redis://127.0.0.1:{dead}/0", timeout=0.2, connect_timeout=0.2)
    )
    assert store.backend == "redis"
    before = samples(exposition(NOW))

    async def run() -> Check:
        with pytest.raises(StoreUnavailableError):
            await store.claim("mfa", "k", 30)
        try:
            return await store.check(1.0)
        finally:
            await store.close()

    check = asyncio.run(run())
    assert not check.ok and check.kind == "store" and check.target == "redis"
    assert f"127.0.0.1:{dead}" in (check.problem or "")
    after = samples(exposition(NOW))
    for operation in ("claim", "get"):
        key = (
            "sts_broker_store_errors_total",
            frozenset({("backend", "redis"), ("operation", operation)}),
        )
        assert after[key] - before.get(key, 0.0) == 1


def test_the_store_wrapper_passes_answers_through() -> None:
    store = MeteredStore(MemoryStore(FrozenClock(NOW)))

    async def run() -> tuple[bool, bool, bytes | None, Check]:
        first = await store.claim("ns", "k", 10)
        second = await store.claim("ns", "k", 10)
        await store.put("ns", "v", b"1", 10)
        return first, second, await store.get("ns", "v"), await store.check(1.0)

    assert asyncio.run(run()) == (True, False, b"1", Check("store", "memory"))


# --------------------------------------------------------------------------- readiness


def test_readiness_is_200_only_when_every_check_passed() -> None:
    assert readiness([Check("store", "sqlite")])[0] == 200
    status, body = readiness(
        [Check("store", "sqlite"), Check("oidc_keys", "https://idp.example", "keys expired")]
    )
    assert status == 503
    assert body == {
        "status": "not ready",
        "failed": ["oidc_keys https://idp.example"],
        "checks": [
            {"check": "store", "target": "sqlite", "ok": True},
            {
                "check": "oidc_keys",
                "target": "https://idp.example",
                "ok": False,
                "reason": "keys expired",
            },
        ],
    }


# --------------------------------------------------------------------------- audit


def _emit(trail: AuditTrail) -> dict[str, Any] | None:
    return trail.emit(
        source="sts.amazonaws.com",
        name="GetCallerIdentity",
        event_type="AwsApiCall",
        facts=RequestFacts("192.0.2.1", "test\nagent", "req-1"),
        user_identity={"type": "Unknown"},
        error_code="AccessDenied",
        error_message="no",
    )


def test_a_trail_with_no_sink_and_no_subscriber_builds_nothing() -> None:
    trail = AuditTrail([], region="us-east-1", clock=FrozenClock(NOW))
    assert not trail.enabled
    assert _emit(trail) is None


def test_the_file_sink_appends_one_json_line_per_event_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier": true}\n')
    os.chmod(path, 0o600)
    fresh = tmp_path / "fresh.jsonl"
    trail = AuditTrail(
        [FileSink(path), FileSink(fresh)], region="eu-west-1", clock=FrozenClock(NOW)
    )
    event = _emit(trail)
    _emit(trail)
    trail.close()
    lines = path.read_text().splitlines()
    assert lines[0] == '{"earlier": true}' and len(lines) == 3
    written = json.loads(lines[1])
    assert written == event
    assert list(written)[:8] == [
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
    ]
    assert written["eventTime"] == "2027-01-15T08:00:00Z"
    assert written["userAgent"] == "test\nagent"  # escaped in the line: one event, one line
    assert (fresh.stat().st_mode & 0o777) == 0o600


def test_a_failing_sink_is_counted_and_the_event_still_reaches_the_others() -> None:
    read, write = os.pipe()
    os.close(read)
    os.close(write)  # writing to it now fails with EBADF
    seen: list[dict[str, Any]] = []
    stop = subscribe(lambda event: seen.append(dict(event)))
    try:
        before = samples(exposition(NOW))
        trail = AuditTrail(
            [DescriptorSink(write, "stdout")], region="us-east-1", clock=FrozenClock(NOW)
        )
        assert _emit(trail) is not None
    finally:
        stop()
    key = ("sts_broker_audit_write_errors_total", frozenset({("sink", "stdout")}))
    assert samples(exposition(NOW))[key] - before.get(key, 0.0) == 1
    assert [e["eventName"] for e in seen] == ["GetCallerIdentity"]


def test_event_parameters_and_answers_are_allow_listed() -> None:
    params = {
        "RoleArn": "arn:aws:iam::111111111111:role/Dev",
        "RoleSessionName": "alice",
        "DurationSeconds": 3600,
        "WebIdentityToken": "eyJhbGciOi.secret.token",
        "SAMLAssertion": "PHNhbWxwOlJlc3BvbnNl",
        "TokenCode": "123456",
        "EncodedMessage": "opaque",
        "Tags": [{"Key": "team", "Value": "a"}],
        "SomethingNew": "unknown members are left out",
    }
    assert request_parameters(params) == {
        "roleArn": "arn:aws:iam::111111111111:role/Dev",
        "roleSessionName": "alice",
        "durationSeconds": 3600,
        "tags": [{"key": "team", "value": "a"}],
    }
    result = {
        "Credentials": {
            "AccessKeyId": "ASIABTXV5AHDXZLCH5VC",
            "SecretAccessKey": "s" * 40,
            "SessionToken": "t" * 300,
            "Expiration": NOW,
        },
        "WebIdentityToken": "eyJ.issued.token",
        "Expiration": NOW,
        "DecodedMessage": "{}",
    }
    assert response_elements(result) == {
        "credentials": {
            "accessKeyId": "ASIABTXV5AHDXZLCH5VC",
            "expiration": "2027-01-15T08:00:00Z",
        },
        "expiration": "2027-01-15T08:00:00Z",
    }


def test_a_list_refused_before_parsing_is_recorded_as_a_list() -> None:
    # botocore sends ``TransitiveTagKeys=`` for an empty list; a call that fails its
    # validation is recorded from the wire form, still in the schema's shape.
    assert request_parameters({"RoleArn": "r", "TransitiveTagKeys": ""}) == {
        "roleArn": "r",
        "transitiveTagKeys": [],
    }
    wire = {"TransitiveTagKeys.member.1": "team", "TransitiveTagKeys.member.2": "env"}
    assert request_parameters(wire) == {"transitiveTagKeys": ["team", "env"]}


# --------------------------------------------------------------------------- logs


def _record(message: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys  # noqa: PLC0415

            info = sys.exc_info()
    return logging.LogRecord("broker.sts", logging.WARNING, __file__, 1, message, (), info)


def test_json_log_lines_carry_the_request_id_inside_a_request() -> None:
    formatter = JsonFormatter()
    outside = json.loads(formatter.format(_record("start\nup")))
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["message"] == "start\nup" and outside["level"] == "WARNING"
    assert outside["logger"] == "broker.sts" and outside["time"].endswith("+00:00")
    context, token = begin_request()
    try:
        note_outcome("AccessDenied", action="AssumeRole")
        inside = json.loads(formatter.format(_record("refused", exc=True)))
    finally:
        end_request(token)
    assert inside["requestId"] == context.request_id
    assert (context.action, context.code) == ("AssumeRole", "AccessDenied")
    assert "ValueError: boom" in inside["exception"]


def test_configure_logging_sets_one_handler_in_the_chosen_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    try:
        configure_logging("info", "json")
        logging.getLogger("broker.test").info("hello")
        configure_logging("warning", "text")
        logging.getLogger("broker.test").warning("plain")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = stream.getvalue().splitlines()
    assert json.loads(first)["message"] == "hello"
    assert second.endswith("WARNING broker.test: plain")


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("addition", "problem"),
    [
        (
            "admin_listen: 9090",
            "c.yaml:1: admin_listen: must be a string (got a number); quote it",
        ),
        (
            "admin_listen: localhost",
            "c.yaml:1: admin_listen: must be host:port, such as 127.0.0.1:9090 or [::1]:9090 "
            "(got 'localhost')",
        ),
        (
            'admin_listen: "127.0.0.1:70000"',
            "c.yaml:1: admin_listen: the port must be a number from 1 to 65535 (got 70000)",
        ),
        ('audit: {stdout: "true"}', "c.yaml:1: audit.stdout:"),
        ("audit: {file: missing/audit.jsonl}", "c.yaml:1: audit.file: the folder "),
        ("log_format: yaml", "c.yaml:1: log_format:"),
    ],
)
def test_observability_settings_mistakes_name_their_key(
    addition: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the file is written as ./c.yaml
    assert one_problem(f"{addition}\n{MINIMAL}").startswith(problem)


def test_an_audit_file_that_cannot_be_opened_stops_start_up(tmp_path: Path) -> None:
    from broker.app import create_app, load_broker_config  # noqa: PLC0415
    from broker.config import ConfigError  # noqa: PLC0415

    # A dangling link: the folder exists, the file can't be created (even for root).
    (tmp_path / "audit.jsonl").symlink_to(tmp_path / "gone" / "audit.jsonl")
    (tmp_path / "c.yaml").write_text(f"audit: {{file: audit.jsonl}}\n{USABLE}")
    config = load_broker_config(tmp_path / "c.yaml", environ={})
    with pytest.raises(ConfigError) as info:
        create_app(config)
    assert "c.yaml:1: audit.file: cannot open " in str(info.value)
    assert "No such file or directory" in str(info.value)
