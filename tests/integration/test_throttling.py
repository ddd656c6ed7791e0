"""Throttling against a live broker: real boto3 (retries off, then botocore's defaults), raw
httpx for the exact wire answer, two brokers on one real ``redis-server``, a Redis that dies
mid-test, forged ``X-Forwarded-For`` headers, and the sign-in pages' own limits.

Every test runs its own broker with small limits from its own config file (``throttling:``
and ``trusted_proxies:`` as a user writes them), so no test spends another's tokens.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import boto3
import httpx
import pytest
import redis
import yaml
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app, load_broker_config
from broker.store import RedisStore, Store
from idp_fixtures import SamlUser, serve_in_thread
from idp_fixtures.saml import serve_saml_in_thread
from idp_fixtures.saml.presets import okta
from tests.integration.conftest import (
    DEV,
    Broker,
    Key,
    OffsetClock,
    _key,
    bind_loopback,
    serve_process,
    start_server,
    stop_server,
    write_config,
)
from tests.redis_server import RedisServer, running_redis
from tests.saml_builders import metadata

LARGE = {"rate": 1000, "burst": 1000}
"""A limit no test reaches, for the scopes a test is not about."""
FROM_OFFICE = "FromOffice"
"""A role whose trust policy admits the dev account only from 203.0.113.0/24."""
GCI = "Action=GetCallerIdentity&Version=2011-06-15"
TOKEN_KEY = base64.b64encode(os.urandom(32)).decode()


@dataclass
class Written:
    """A config file on disk and the secrets in it."""

    path: Path
    keys: dict[str, Key]
    totp: dict[str, str]


def write(folder: Path, throttling: dict[str, Any], public_url: str, **top: Any) -> Written:
    """The suite's test config plus ``throttling``, the ``top`` keys and a FromOffice role."""
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    totp = {"alice": base64.b32encode(os.urandom(20)).decode()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "broker.yaml"
    write_config(path, keys, totp, public_url)
    data = yaml.safe_load(path.read_text())
    data["throttling"] = throttling
    data.update(top)
    data["accounts"][DEV]["roles"][FROM_OFFICE] = {
        "trust_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
                }
            ],
        }
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Written(path, keys, totp)


@contextmanager
def run(
    written: Written, sock: socket.socket | None = None, *, store: Store | None = None
) -> Iterator[Broker]:
    """One broker node serving ``written`` (several nodes may serve the same file)."""
    config = load_broker_config(written.path, environ={"TEST_TOKEN_KEY": TOKEN_KEY})
    clock = OffsetClock()
    url, running = start_server(create_app(config, clock=clock, store=store), sock)
    try:
        yield Broker(
            url=url, clock=clock, config_path=written.path, keys=written.keys, totp=written.totp
        )
    finally:
        stop_server(running)


@contextmanager
def serve(
    folder: Path, throttling: dict[str, Any], *, store: Store | None = None, **top: Any
) -> Iterator[Broker]:
    """A broker on its own config (see :func:`write`)."""
    sock = bind_loopback()
    written = write(folder, throttling, f"http://127.0.0.1:{sock.getsockname()[1]}", **top)
    with run(written, sock, store=store) as broker:
        yield broker


def _code(call: Any) -> str:
    """``"OK"`` or the AWS error code a boto3 call ends with."""
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "OK"


def _gci(broker: Broker, user: str) -> str:
    return _code(broker.sts(user, retry=False).get_caller_identity)


def _forwarded(client: Any, value: str) -> Any:
    """``client`` with ``X-Forwarded-For: value`` added after signing, as a proxy adds it."""

    def add(request: Any, **kwargs: Any) -> None:
        request.headers["X-Forwarded-For"] = value

    client.meta.events.register("before-send.sts.*", add)
    return client


def _assume_from(broker: Broker, forwarded: str) -> str:
    client = _forwarded(broker.sts("alice", retry=False), forwarded)
    role = f"arn:aws:iam::{DEV}:role/{FROM_OFFICE}"
    return _code(lambda: client.assume_role(RoleArn=role, RoleSessionName="office"))


# --------------------------------------------------------------------------- per principal


def test_a_flood_from_one_principal_is_throttled_while_another_still_succeeds(
    tmp_path: Path,
) -> None:
    with serve(tmp_path, {"principal": {"rate": 0.01, "burst": 5}, "source_ip": LARGE}) as broker:
        alice = broker.sts("alice", retry=False)  # every refusal reaches the test
        assert [_code(alice.get_caller_identity) for _ in range(5)] == ["OK"] * 5
        with pytest.raises(ClientError) as caught:
            alice.get_caller_identity()
        error = caught.value.response
        assert error["Error"] == {
            "Type": "Sender",
            "Code": "Throttling",
            "Message": "Rate exceeded",
        }
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        # How long until the bucket has a token (one every 100 s), for botocore's backoff.
        wait_ms = int(error["ResponseMetadata"]["HTTPHeaders"]["x-amz-retry-after"])
        assert 90_000 < wait_ms <= 100_000
        # Every action shares the principal's bucket when none has one of its own.
        role = f"arn:aws:iam::{DEV}:role/Dev"
        assert (
            _code(lambda: alice.assume_role(RoleArn=role, RoleSessionName="alice")) == "Throttling"
        )
        # Another principal, from the same address, is untouched.
        bob = broker.sts("bob", retry=False)
        assert [_code(bob.get_caller_identity) for _ in range(4)] == ["OK"] * 4
        creds = bob.get_session_token()["Credentials"]  # bob's 5th
        assert _code(bob.get_caller_identity) == "Throttling"
        # A session's key is a principal of its own.
        session = broker.sts(
            retry=False,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        assert [_code(session.get_caller_identity) for _ in range(5)] == ["OK"] * 5


def test_boto3_with_its_default_retries_succeeds_once_the_bucket_refills(tmp_path: Path) -> None:
    with serve(tmp_path, {"principal": {"rate": 1, "burst": 2}, "source_ip": LARGE}) as broker:
        alice = broker.sts("alice", retry=False)
        default = boto3.client(  # no retry config at all: what every user of boto3 has
            "sts",
            endpoint_url=broker.url,
            region_name="us-east-1",
            aws_access_key_id=broker.keys["alice"].id,
            aws_secret_access_key=broker.keys["alice"].secret,
        )
        # Empty the bucket (a slow machine may see a token come back in between).
        codes = [_code(alice.get_caller_identity) for _ in range(2)]
        while codes[-1] != "Throttling" and len(codes) < 10:
            codes.append(_code(alice.get_caller_identity))
        assert codes[:2] == ["OK", "OK"] and codes[-1] == "Throttling"
        # Refused at first, retried, then answered: botocore's own backoff for Throttling
        # (a random wait below 1 s, then below 2 s, 3 attempts in all) could give up before a
        # 1 s refill; x-amz-retry-after makes it wait until the token is there.
        answer = default.get_caller_identity()
        assert answer["Arn"] == f"arn:aws:iam::{DEV}:user/alice"
        assert answer["ResponseMetadata"]["RetryAttempts"] >= 1


@dataclass
class WebIdentity:
    """A broker trusting one fixture OIDC issuer, and unsigned boto3 calls to it."""

    broker: Broker
    corp: Any
    """The fixture issuer (``corp.id_token(sub, aud=...)``)."""

    def token(self, subject: str) -> str:
        return str(self.corp.id_token(subject, aud="test-client"))

    def assume(self, token: str) -> str:
        sts = boto3.client(  # unsigned, as every web identity client sends it
            "sts",
            endpoint_url=self.broker.url,
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}, signature_version=UNSIGNED),
        )
        return _code(
            lambda: sts.assume_role_with_web_identity(
                RoleArn=f"arn:aws:iam::{DEV}:role/WebCorp",
                RoleSessionName="web",
                WebIdentityToken=token,
            )
        )


@contextmanager
def _web_identity(
    folder: Path, subject_limit: dict[str, Any], *, single_use: bool = False
) -> Iterator[WebIdentity]:
    """AssumeRoleWithWebIdentity limited per subject by ``subject_limit`` (its own bucket)."""
    throttling = {
        "principal": LARGE,
        "source_ip": LARGE,
        "actions": {"AssumeRoleWithWebIdentity": {"principal": subject_limit}},
    }
    with serve_in_thread() as idp:
        corp = idp.add_issuer("corp")
        provider = f"arn:aws:iam::{DEV}:oidc-provider/{idp.url.removeprefix('http://')}/corp"
        account = {
            "oidc_providers": [
                {"url": corp.issuer, "client_ids": ["test-client"], "single_use": single_use}
            ],
            "roles": {"WebCorp": _trusting(provider, "sts:AssumeRoleWithWebIdentity")},
        }
        with _broker_on(folder / "web.yaml", throttling, account) as broker:
            yield WebIdentity(broker, corp)


def test_web_identity_is_throttled_per_verified_subject(tmp_path: Path) -> None:
    """Federated principals are issuer + sub, counted only once the token verified: tokens
    that fail verification cannot spend the bucket of the subject they name."""
    with _web_identity(tmp_path, {"rate": 0.01, "burst": 2}) as web:
        alice = web.token("alice")
        assert [web.assume(alice) for _ in range(3)] == ["OK", "OK", "Throttling"]
        assert web.assume(web.token("bob")) == "OK"
        carol = web.token("carol")
        head, body, signature = carol.split(".")
        forged = f"{head}.{body}.{signature[:-4]}AAAA"
        assert [web.assume(forged) for _ in range(5)] == ["InvalidIdentityToken"] * 5
        assert [web.assume(carol) for _ in range(2)] == ["OK", "OK"]


def test_a_throttled_call_does_not_use_up_a_single_use_token(tmp_path: Path) -> None:
    with _web_identity(tmp_path, {"rate": 0.01, "burst": 1}, single_use=True) as web:
        assert web.assume(web.token("alice")) == "OK"
        second = web.token("alice")
        assert web.assume(second) == "Throttling"
        web.broker.clock.offset += 100  # one token back
        assert web.assume(second) == "OK"  # the refused call did not spend it ...
        web.broker.clock.offset += 100
        assert web.assume(second) == "InvalidIdentityToken"  # ... this one did: single_use


def test_a_throttled_call_does_not_use_up_an_mfa_code(tmp_path: Path) -> None:
    with serve(tmp_path, {"principal": {"rate": 0.1, "burst": 1}, "source_ip": LARGE}) as broker:
        code = broker.fresh_code("alice")
        alice = broker.sts("alice", retry=False)
        mfa = f"arn:aws:iam::{DEV}:mfa/alice"

        def session() -> str:
            return _code(lambda: alice.get_session_token(SerialNumber=mfa, TokenCode=code))

        assert _gci(broker, "alice") == "OK"  # the bucket's one token
        assert session() == "Throttling"
        broker.clock.offset += 11  # a token back; the code is still within its window
        assert session() == "OK"
        broker.clock.offset += 11
        assert session() == "AccessDenied"  # now it was used


def test_saml_is_throttled_per_verified_subject_and_keeps_its_assertions(
    tmp_path: Path,
) -> None:
    provider = f"arn:aws:iam::{DEV}:saml-provider/Corp"
    role = f"arn:aws:iam::{DEV}:role/SamlCorp"
    users = [SamlUser(name, roles=((role, provider),)) for name in ("alice", "bob")]
    throttling = {
        "principal": LARGE,
        "source_ip": LARGE,
        "actions": {"AssumeRoleWithSAML": {"principal": {"rate": 0.01, "burst": 1}}},
    }
    with serve_saml_in_thread(users=users) as idp:
        account = {
            "saml_providers": {"Corp": {"metadata_url": idp.metadata_url}},
            "roles": {"SamlCorp": _trusting(provider, "sts:AssumeRoleWithSAML")},
        }
        with _broker_on(tmp_path / "saml.yaml", throttling, account) as broker:
            sts = boto3.client(
                "sts",
                endpoint_url=broker.url,
                region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1}, signature_version=UNSIGNED),
            )

            def response(user: str) -> str:
                return okta(
                    idp.idp,
                    user=user,
                    sp_entity_id=f"{broker.url}/saml/metadata",
                    acs_url=f"{broker.url}/saml/acs",
                )

            def assume(assertion: str) -> str:
                return _code(
                    lambda: sts.assume_role_with_saml(
                        RoleArn=role, PrincipalArn=provider, SAMLAssertion=assertion
                    )
                )

            assert assume(response("alice")) == "OK"
            second = response("alice")
            assert assume(second) == "Throttling"
            assert assume(response("bob")) == "OK"
            broker.clock.offset += 100
            assert assume(second) == "OK"  # single_use (the default), yet not spent above
            broker.clock.offset += 100
            assert assume(second) == "InvalidIdentityToken"


def _trusting(federated: str, action: str) -> dict[str, Any]:
    """A role whose trust policy admits ``federated`` for ``action``."""
    return {
        "trust_policy": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Federated": federated}, "Action": action}
            ],
        }
    }


@contextmanager
def _broker_on(path: Path, throttling: dict[str, Any], account: dict[str, Any]) -> Iterator[Broker]:
    """A broker whose whole config is ``throttling`` and one dev ``account``, written to
    ``path``, with a movable clock (no users: federation and pages only)."""
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    data = {"public_url": url, "throttling": throttling, "accounts": {DEV: account}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    clock = OffsetClock()
    url, running = start_server(create_app(load_broker_config(path), clock=clock), sock)
    try:
        yield Broker(url=url, clock=clock, config_path=path, keys={}, totp={})
    finally:
        stop_server(running)


# --------------------------------------------------------------------------- per address


def _raw_gci(url: str, **headers: str) -> httpx.Response:
    return httpx.post(
        url,
        content=GCI,
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


def test_the_source_address_is_counted_before_authentication_and_per_action(
    tmp_path: Path,
) -> None:
    throttling = {
        "principal": LARGE,
        "source_ip": {"rate": 0.01, "burst": 6},
        "actions": {"GetCallerIdentity": {"source_ip": {"rate": 0.01, "burst": 3}}},
    }
    with serve(tmp_path, throttling) as broker:
        unsigned = [_raw_gci(broker.url) for _ in range(3)]
        assert [r.status_code for r in unsigned] == [403] * 3  # MissingAuthenticationToken
        refused = _raw_gci(broker.url)
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "text/xml; charset=utf-8"
        assert 90_000 < int(refused.headers["x-amz-retry-after"]) <= 100_000
        envelope = ElementTree.fromstring(refused.content)
        ns = "{https://sts.amazonaws.com/doc/2011-06-15/}"
        assert envelope.tag == f"{ns}ErrorResponse"
        fields = [(e.tag.removeprefix(ns), (e.text or "").strip()) for e in envelope.iter()]
        assert fields[1:] == [
            ("Error", ""),
            ("Type", "Sender"),
            ("Code", "Throttling"),
            ("Message", "Rate exceeded"),
            ("RequestId", refused.headers["x-amzn-requestid"]),
        ]
        # Signed or not, GetCallerIdentity from this address now waits ...
        assert _gci(broker, "alice") == "Throttling"
        # ... while the other actions share the address's own bucket of 6.
        role = f"arn:aws:iam::{DEV}:role/Dev"
        alice = broker.sts("alice", retry=False)
        codes = [_code(lambda: alice.assume_role(RoleArn=role, RoleSessionName="alice"))]
        codes += [
            _code(lambda: broker.sts("bob", retry=False).get_session_token()) for _ in range(6)
        ]
        assert codes == ["OK"] * 6 + ["Throttling"]


def test_a_forged_x_forwarded_for_is_ignored_without_trusted_proxies(tmp_path: Path) -> None:
    throttling = {"principal": LARGE, "source_ip": {"rate": 0.01, "burst": 3}}
    with serve(tmp_path, throttling) as broker:
        # Not a new bucket per forged address: every call counts as 127.0.0.1.
        answers = [
            _raw_gci(broker.url, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
            for i in range(4)
        ]
        assert answers == [403, 403, 403, 400]
    with serve(tmp_path / "again", {"principal": LARGE, "source_ip": LARGE}) as broker:
        # ... and never an address a policy condition believes.
        assert _assume_from(broker, "203.0.113.5") == "AccessDenied"


def test_sts_broker_serve_does_not_believe_x_forwarded_for_from_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn alone would trust X-Forwarded-For from 127.0.0.1 (its ``proxy_headers``
    default); the real command turns that off, so only ``trusted_proxies`` decides."""
    monkeypatch.setenv("TEST_TOKEN_KEY", TOKEN_KEY)
    written = write(tmp_path, {}, "http://127.0.0.1:8080")
    command = [sys.executable, "-m", "broker", "serve", str(written.path), "--log-level", "warning"]
    with serve_process(command) as served:
        node = Broker(
            url=served.url,
            clock=OffsetClock(),
            config_path=written.path,
            keys=written.keys,
            totp=written.totp,
        )
        assert _assume_from(node, "203.0.113.5") == "AccessDenied"


def test_trusted_proxies_give_the_right_most_address_they_do_not_vouch_for(
    tmp_path: Path,
) -> None:
    throttling = {"principal": LARGE, "source_ip": {"rate": 0.01, "burst": 2}}
    proxies = ["127.0.0.1", "10.0.0.0/8"]
    with serve(tmp_path, throttling, trusted_proxies=proxies) as broker:
        assert _assume_from(broker, "203.0.113.5") == "OK"
        # A chain of our own proxies is walked through.
        assert _assume_from(broker, "203.0.113.6, 10.1.2.3") == "OK"
        # The client forged 203.0.113.5; our proxy appended its real address.
        assert _assume_from(broker, "203.0.113.5, 198.51.100.7") == "AccessDenied"
        # Garbage where the client's address should be: no source address at all.
        assert _assume_from(broker, "203.0.113.5, not-an-ip") == "AccessDenied"
        # Each forwarded client has its own bucket (203.0.113.5 used 1 of its 2 above).
        assert _assume_from(broker, "203.0.113.5") == "OK"
        assert _assume_from(broker, "203.0.113.5") == "Throttling"
        assert _assume_from(broker, "6.6.6.6, 203.0.113.9") == "OK"
        # Without the header, the trusted proxy itself is the source.
        assert _gci(broker, "alice") == "OK"


# --------------------------------------------------------------------------- pages


def test_signin_pages_and_device_code_entry_have_their_own_limits(tmp_path: Path) -> None:
    (tmp_path / "idp.xml").write_bytes(metadata())
    throttling = {
        "principal": LARGE,
        "source_ip": LARGE,
        "signin": {"rate": 0.01, "burst": 2},
        "device": {"rate": 0.01, "burst": 3},
    }
    account = {
        "saml_providers": {"Corp": {"metadata_file": str(tmp_path / "idp.xml")}},
        "roles": {
            "Dev": _trusting(f"arn:aws:iam::{DEV}:saml-provider/Corp", "sts:AssumeRoleWithSAML")
        },
    }
    # Browser sign-in exists where a login provider does: a SAML provider's.
    with (
        _broker_on(tmp_path / "saml.yaml", throttling, account) as broker,
        httpx.Client(base_url=broker.url) as browser,
    ):
        url = broker.url
        first = [browser.get("/saml/login").status_code for _ in range(2)]
        assert 429 not in first
        page = browser.get("/saml/login")
        assert page.status_code == 429
        assert page.headers["retry-after"] == "100"
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "Too many sign-in requests came from your network" in page.text
        assert "Wait 100 seconds, then try again." in page.text and "Throttling" in page.text
        # The CLI's JSON endpoints answer in their own (RFC 6749) shape.
        tokens = [browser.post("/cli/token", data={"grant_type": "x"}) for _ in range(2)]
        assert [t.json()["error"] for t in tokens] == ["unsupported_grant_type"] * 2
        assert browser.get("/cli/device").status_code != 429  # the 3rd of the device bucket
        slow = browser.post("/cli/device", data={"code_challenge": "x"})
        assert (slow.status_code, slow.headers["retry-after"]) == (429, "100")
        assert slow.json() == {
            "error": "slow_down",
            "error_description": "Rate exceeded: too many requests from this address; "
            "retry in 100 seconds",
        }
        entry = browser.get("/cli/device")
        assert entry.status_code == 429 and "Too many device-code requests" in entry.text
        # The STS API from the same address has buckets of its own.
        assert _raw_gci(url).status_code == 403


# --------------------------------------------------------------------------- Redis


def _prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


def test_the_limit_holds_across_two_brokers_sharing_one_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    prefix = _prefix()
    throttling = {"principal": {"rate": 0.01, "burst": 6}, "source_ip": LARGE}
    first = bind_loopback()
    written = write(tmp_path, throttling, f"http://127.0.0.1:{first.getsockname()[1]}")
    with (
        run(written, first, store=RedisStore(redis_server.url, key_prefix=prefix)) as node_a,
        run(written, store=RedisStore(redis_server.url, key_prefix=prefix)) as node_b,
    ):
        # One user (one config) alternating between the two nodes: 6 tokens in all.
        codes = [_gci(node, "alice") for node in [node_a, node_b] * 5]
        assert codes == ["OK"] * 6 + ["Throttling"] * 4
        assert _gci(node_b, "bob") == "OK"
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)
    keys = {k.decode() for k in raw.scan_iter(match=f"{prefix}throttle-principal:*")}
    raw.close()
    assert keys == {
        f"{prefix}throttle-principal:* {written.keys['alice'].id}",
        f"{prefix}throttle-principal:* {written.keys['bob'].id}",
    }


def test_with_redis_down_stateless_calls_keep_working_and_limits_hold_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password = "pw-" + uuid.uuid4().hex
    prefix = _prefix()
    throttling = {"principal": {"rate": 0.01, "burst": 4}, "source_ip": LARGE}
    caplog.set_level(logging.WARNING, logger="broker.throttling")
    with running_redis(password=password) as server:
        store = RedisStore(server.url, key_prefix=prefix)
        with serve(tmp_path, throttling, store=store) as broker:
            assert _gci(broker, "alice") == "OK"  # a bucket in Redis
            server.stop()
            started = time.monotonic()
            # Fail open to this process's buckets: bob's calls work, and still have a limit.
            assert [_gci(broker, "bob") for _ in range(5)] == ["OK"] * 4 + ["Throttling"]
            assert time.monotonic() - started < 3.0
            warnings = [r.getMessage() for r in caplog.records]
            assert any("kept in this process" in w and "cannot be reached" in w for w in warnings)
            assert not any(password in w for w in warnings)
            server.start()
            broker.clock.offset += 6  # past the fallback interval: the store is asked again
            assert _gci(broker, "carol") == "OK"
            assert (
                caplog.records[-1].getMessage() == "rate-limit buckets are back in the shared store"
            )
            raw = redis.Redis(host="127.0.0.1", port=server.port, password=password)
            keys = [k.decode() for k in raw.scan_iter(match=f"{prefix}throttle-principal:*")]
            raw.close()
            assert keys == [f"{prefix}throttle-principal:* {broker.keys['carol'].id}"]


def test_a_hung_redis_costs_one_timeout_per_interval_not_one_per_call(tmp_path: Path) -> None:
    """SIGSTOP: connections are accepted and nothing answers. The first call waits out the
    store's timeout (0.5 s), then the buckets are local for the fallback interval."""
    throttling = {"principal": {"rate": 0.01, "burst": 3}, "source_ip": LARGE}
    with running_redis() as server:
        store = RedisStore(server.url, key_prefix=_prefix())
        with serve(tmp_path, throttling, store=store) as broker:
            assert _gci(broker, "alice") == "OK"  # connected, a bucket in Redis
            server.pause()
            try:
                started = time.monotonic()
                assert _gci(broker, "bob") == "OK"
                first = time.monotonic() - started
                started = time.monotonic()
                codes = [_gci(broker, "bob") for _ in range(10)]
                rest = time.monotonic() - started
            finally:
                server.resume()
            assert 0.5 <= first < 2.5, first
            assert codes == ["OK"] * 2 + ["Throttling"] * 8  # bob's limit holds locally
            assert rest < 3.0, rest  # a timeout per call would be 10 x 0.5 s at least


def test_redis_key_names_carry_no_secret(tmp_path: Path, redis_server: RedisServer) -> None:
    prefix = _prefix()
    slow = {"rate": 0.01, "burst": 100}  # so the buckets are still there to look at
    throttling = {"principal": slow, "source_ip": slow}
    with serve(tmp_path, throttling, store=RedisStore(redis_server.url, key_prefix=prefix)) as b:
        assert _gci(b, "alice") == "OK"
        secret = b.keys["alice"].secret
    raw = redis.Redis(host="127.0.0.1", port=redis_server.port)
    stored = {k.decode(): raw.get(k) for k in raw.scan_iter(match=f"{prefix}*")}
    raw.close()
    assert set(stored) == {
        f"{prefix}throttle-principal:* {b.keys['alice'].id}",
        f"{prefix}throttle-ip:* 127.0.0.1",
    }
    assert all(re.fullmatch(rb"[0-9]+", v or b"") for v in stored.values())
    assert not any(secret in k for k in stored)
