"""Two broker nodes on one real Redis: what one node remembers, the other one knows.

Two uvicorn servers in threads, each built by its own ``create_app`` call (its own app,
RedisStore, key caches) from the same config file, share one password-protected
``redis-server`` this module starts, as two nodes behind a load balancer would. Node A is
the config's ``public_url`` (where the IdP posts back, as to the balancer's address) and
parses HTTP with h11; node B parses it with httptools, so every flow here crosses both
parsers. The clients are real: httpx (forms, cookies, the CLI's JSON endpoints), boto3 for
signed calls, the fixture SAML IdP and OIDC provider signing real assertions and tokens.

Then Redis goes away mid-test, twice: paused (it accepts connections and never answers,
the worst case for timeouts) and stopped (connections refused). Either way every path
that needs the store answers 503 ``ServiceUnavailable`` in its audience's shape within the
configured timeout, every path that does not keeps answering 200, and once Redis is back
everything works again with the same two brokers.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.config import load_config
from broker.pkce import challenge_of, new_verifier
from broker.totp import decode_secret, totp_now
from idp_fixtures import OidcServer, SamlUser, serve_in_thread
from idp_fixtures.saml import SamlServer, serve_saml_in_thread
from idp_fixtures.saml.presets import okta
from tests.integration.cli_setup import approval_form
from tests.integration.conftest import (
    DEV,
    Key,
    OffsetClock,
    _key,
    bind_loopback,
    client_credentials,
    start_server,
    stop_server,
)
from tests.integration.test_saml import _auto_post_form
from tests.redis_server import RedisServer, running_redis
from tests.saml_builders import keypair

CORP = f"arn:aws:iam::{DEV}:saml-provider/Corp"
READER = f"arn:aws:iam::{DEV}:role/Reader"
PLAIN = f"arn:aws:iam::{DEV}:role/Plain"
GUARDED = f"arn:aws:iam::{DEV}:role/Guarded"
MFA = f"arn:aws:iam::{DEV}:mfa/alice"
CLIENT = "fleet-client"
SESSION_NAME = "alice@example.com"
PASSWORD = "fleet-redis-pw-3141"
TIMEOUT = 0.3
"""The brokers' Redis timeouts (connect and reply), seconds."""
BOUND = 2.0
"""What a store path may take to answer while Redis is down: the timeout plus the time a
loaded 2-core machine takes to serve one request."""
RACERS = 20


@dataclass
class Fleet:
    a: str
    b: str
    redis: RedisServer
    idp: SamlServer
    oidc: OidcServer
    clock: OffsetClock
    alice: Key
    seed: str

    @property
    def nodes(self) -> tuple[str, str]:
        return (self.a, self.b)

    @property
    def acs(self) -> str:
        return f"{self.a}/saml/acs"

    def assertion(self) -> str:
        """A fresh Okta-shaped response for alice, Reader role, addressed to the fleet."""
        return okta(
            self.idp.idp,
            sp_entity_id=f"{self.a}/saml/metadata",
            acs_url=self.acs,
            roles=((READER, CORP),),
            session_name=SESSION_NAME,
        )

    def id_token(self, issuer: str) -> str:
        return self.oidc.issuer(issuer).id_token("alice", aud=CLIENT)

    def sts(self, node: str, **creds: Any) -> Any:
        if not creds:
            creds = {
                "aws_access_key_id": self.alice.id,
                "aws_secret_access_key": self.alice.secret,
            }
        return boto3.client(
            "sts",
            endpoint_url=node,
            region_name="us-east-1",
            # One attempt: botocore retries 503s, and the test is about the first answer.
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
            **creds,
        )

    def code(self) -> str:
        return totp_now(decode_secret(self.seed), self.clock.time())

    def next_code(self) -> str:
        """A code of the next 30 s step (a code is accepted once per device)."""
        self.clock.offset += 30
        return self.code()


def query(node: str, **params: str) -> tuple[int, str]:
    """An unsigned STS call with httpx: (HTTP status, error code or "OK")."""
    answer = httpx.post(node, data={"Version": "2011-06-15", **params}, timeout=10)
    code = re.search(r"<Code>([^<]+)</Code>", answer.text)
    return answer.status_code, code.group(1) if code else "OK"


def saml_call(node: str, assertion: str) -> tuple[int, str]:
    return query(
        node,
        Action="AssumeRoleWithSAML",
        RoleArn=READER,
        PrincipalArn=CORP,
        SAMLAssertion=assertion,
    )


def web_call(node: str, role: str, token: str) -> tuple[int, str]:
    return query(
        node,
        Action="AssumeRoleWithWebIdentity",
        RoleArn=f"arn:aws:iam::{DEV}:role/{role}",
        RoleSessionName="web",
        WebIdentityToken=token,
    )


def race(fleet: Fleet, call: Callable[[str], tuple[int, str]]) -> list[tuple[int, str]]:
    """``call`` from RACERS threads at once, alternating the two nodes."""
    barrier = threading.Barrier(RACERS)

    def one(index: int) -> tuple[int, str]:
        barrier.wait()
        return call(fleet.nodes[index % 2])

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def _trust(principal: dict[str, str], action: str, **extra: Any) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": principal, "Action": action, **extra}],
    }


def _config(folder: Path, public_url: str, redis: RedisServer, idp: str, oidc: str) -> Path:
    alice = _key(0)
    seed = base64.b32encode(os.urandom(20)).decode()
    sp = keypair("fleet-sp")
    (folder / "sp.key").write_bytes(sp.key_pem)
    (folder / "sp.crt").write_text(sp.cert_pem)
    oidc_host = oidc.removeprefix("http://")
    config = {
        "public_url": public_url,
        # The password comes from the environment, as in a deployment.
        "state": f"redis://:${{REDIS_PASSWORD}}@127.0.0.1:{redis.port}/0",
        "redis": {
            "key_prefix": "fleet-test:",
            "connect_timeout_seconds": TIMEOUT,
            "timeout_seconds": TIMEOUT,
        },
        "token_keys": [{"id": "f1", "secret": base64.b64encode(os.urandom(32)).decode()}],
        "saml": {"sp_key_file": "sp.key", "sp_cert_file": "sp.crt"},
        "login": {
            "providers": {
                "corp": {"label": "Corp SSO", "saml": {"account": DEV, "provider": "Corp"}}
            }
        },
        "accounts": {
            DEV: {
                "alias": "dev",
                "users": {
                    "alice": {
                        "access_keys": [{"id": alice.id, "secret": alice.secret}],
                        "mfa_devices": [{"serial": MFA, "totp_secret": seed}],
                        "policies": {
                            "assume": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
                                ],
                            }
                        },
                    }
                },
                "saml_providers": {"Corp": {"metadata_url": idp}},  # single_use by default
                "oidc_providers": [
                    {"url": f"{oidc}/once", "client_ids": [CLIENT], "single_use": True},
                    {"url": f"{oidc}/reuse", "client_ids": [CLIENT]},
                ],
                "roles": {
                    "Reader": {
                        "trust_policy": _trust(
                            {"Federated": CORP},
                            "sts:AssumeRoleWithSAML",
                            Condition={"StringEquals": {"saml:aud": f"{public_url}/saml/acs"}},
                        )
                    },
                    "Plain": {
                        "trust_policy": _trust(
                            {"AWS": f"arn:aws:iam::{DEV}:root"}, "sts:AssumeRole"
                        )
                    },
                    "Guarded": {
                        "trust_policy": _trust(
                            {"AWS": f"arn:aws:iam::{DEV}:root"},
                            "sts:AssumeRole",
                            Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}},
                        )
                    },
                    **{
                        name: {
                            "trust_policy": _trust(
                                {
                                    "Federated": f"arn:aws:iam::{DEV}:oidc-provider/"
                                    f"{oidc_host}/{issuer}"
                                },
                                "sts:AssumeRoleWithWebIdentity",
                            )
                        }
                        for name, issuer in (("WebOnce", "once"), ("WebReuse", "reuse"))
                    },
                },
            }
        },
    }
    path = folder / "broker.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "alice").write_text(f"{alice.id}\n{alice.secret}\n{seed}\n")
    return path


@contextmanager
def fleet_on_redis(folder: Path) -> Iterator[Fleet]:
    alice = SamlUser(
        "alice", email=SESSION_NAME, roles=((READER, CORP),), session_name=SESSION_NAME
    )
    with ExitStack() as stack:
        redis = stack.enter_context(running_redis(password=PASSWORD))
        idp = stack.enter_context(serve_saml_in_thread(users=[alice], auto_login="alice"))
        oidc = stack.enter_context(serve_in_thread())
        for name in ("once", "reuse"):
            oidc.add_issuer(name)
        sock_a, sock_b = bind_loopback(), bind_loopback()
        url_a = f"http://127.0.0.1:{sock_a.getsockname()[1]}"
        path = _config(folder, url_a, redis, idp.metadata_url, oidc.url)
        key_id, secret, seed = (folder / "alice").read_text().split()
        clock = OffsetClock()
        servers = []
        for sock, parser in ((sock_a, "h11"), (sock_b, "httptools")):
            # Two create_app calls: two apps, two RedisStores, as on two machines.
            config = load_config(path, environ={"REDIS_PASSWORD": PASSWORD})
            servers.append(start_server(create_app(config, clock=clock), sock, http=parser))
        for _, running in servers:
            stack.callback(stop_server, running)
        sp = keypair("fleet-sp")
        idp.idp.register_sp(f"{url_a}/saml/metadata", (f"{url_a}/saml/acs",), cert=sp.cert)
        yield Fleet(
            a=servers[0][0],
            b=servers[1][0],
            redis=redis,
            idp=idp,
            oidc=oidc,
            clock=clock,
            alice=Key(key_id, secret),
            seed=seed,
        )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with fleet_on_redis(tmp_path_factory.mktemp("fleet")) as running:
        yield running


def sign_in(fleet: Fleet, client: httpx.Client, start_on: str) -> None:
    """Sign alice in through the IdP: the login starts on ``start_on``, the IdP posts the
    answer to the public URL (node A), as through a load balancer."""
    button = client.get(f"{start_on}/login/corp")
    assert button.status_code == 303, button.text
    start = client.get(f"{start_on}{button.headers['location']}")
    assert start.status_code == 302, start.text
    at_idp = client.get(start.headers["location"], follow_redirects=True)
    form = _auto_post_form(at_idp.text)
    action = form.pop("action")
    assert action == fleet.acs
    done = client.post(action, data=form)
    assert done.status_code == 303, done.text


# ---------------------------------------------------------------------- shared state


def test_a_single_use_saml_assertion_is_accepted_once_across_both_nodes(fleet: Fleet) -> None:
    for _ in range(2):
        assertion = fleet.assertion()
        results = race(fleet, lambda node, a=assertion: saml_call(node, a))  # type: ignore[misc]
        assert sorted(results) == [(200, "OK")] + [(400, "InvalidIdentityToken")] * (RACERS - 1)


def test_a_single_use_oidc_token_is_accepted_once_across_both_nodes(fleet: Fleet) -> None:
    for _ in range(2):
        token = fleet.id_token("once")
        results = race(fleet, lambda node, t=token: web_call(node, "WebOnce", t))  # type: ignore[misc]
        assert sorted(results) == [(200, "OK")] + [(400, "InvalidIdentityToken")] * (RACERS - 1)
    # A provider that is not single_use accepts the same token on both nodes, as AWS does.
    token = fleet.id_token("reuse")
    assert [web_call(node, "WebReuse", token) for node in fleet.nodes] == [(200, "OK")] * 2


def test_a_totp_code_used_on_one_node_is_refused_on_the_other(fleet: Fleet) -> None:
    code = fleet.next_code()
    arn = fleet.sts(fleet.a).assume_role(
        RoleArn=GUARDED, RoleSessionName="mfa", SerialNumber=MFA, TokenCode=code
    )["AssumedRoleUser"]["Arn"]
    assert arn == f"arn:aws:sts::{DEV}:assumed-role/Guarded/mfa"
    with pytest.raises(ClientError) as refused:
        fleet.sts(fleet.b).assume_role(
            RoleArn=GUARDED, RoleSessionName="mfa", SerialNumber=MFA, TokenCode=code
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert "This code was already used" in error["Message"]


def test_a_browser_session_made_on_one_node_works_on_the_other(fleet: Fleet) -> None:
    with httpx.Client(timeout=30) as browser:
        sign_in(fleet, browser, start_on=fleet.b)  # login bound on B, finished on A
        for node in (fleet.b, fleet.a):
            roles = browser.get(f"{node}/roles")
            assert roles.status_code == 200, roles.text
            assert READER in roles.text
        # Signing out on B ends the session on A too.
        page = browser.get(f"{fleet.a}/roles")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text
        out = browser.post(f"{fleet.b}/logout", data={"csrf_token": token.group(1)})
        assert out.status_code in (200, 303), out.text
        after = browser.get(f"{fleet.a}/roles")
        assert after.status_code == 303 and after.headers["location"].startswith("/")


def test_a_device_code_started_on_a_is_approved_on_b_and_redeemed_on_a(fleet: Fleet) -> None:
    verifier = new_verifier()
    start = httpx.post(
        f"{fleet.a}/cli/device", data={"code_challenge": challenge_of(verifier), "role": READER}
    )
    assert start.status_code == 200, start.text
    device = start.json()
    poll = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device["device_code"],
        "code_verifier": verifier,
    }
    with httpx.Client(timeout=30) as browser:
        sign_in(fleet, browser, start_on=fleet.a)
        page = browser.get(f"{fleet.b}/cli/device", params={"user_code": device["user_code"]})
        assert page.status_code == 200, page.text
        approved = browser.post(f"{fleet.b}/cli/device/approve", data=approval_form(page.text))
        assert approved.status_code == 200, approved.text
    redeemed = httpx.post(f"{fleet.a}/cli/token", data=poll)
    assert redeemed.status_code == 200, redeemed.text
    body = redeemed.json()
    assert body["RoleArn"] == READER and body["AccessKeyId"].startswith("ASIA")
    # Redeemed once: node B knows it too.
    again = httpx.post(f"{fleet.b}/cli/token", data=poll)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


# ---------------------------------------------------------------------- Redis outage


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = call()
    return time.monotonic() - started, result


def _store_paths_fail_closed(
    fleet: Fleet, browser: httpx.Client, session_creds: Any, user_session: Any
) -> None:
    """Every store path answers 503 in its own shape, fast; every stateless one 200."""
    code = fleet.next_code()
    for node in fleet.nodes:
        # STS Query API: AWS's XML envelope, ServiceUnavailable, a server fault.
        elapsed, answer = _timed(lambda n=node: saml_call(n, fleet.assertion()))  # type: ignore[misc]
        assert answer == (503, "ServiceUnavailable") and elapsed < BOUND, (answer, elapsed)
        token = fleet.id_token("once")
        elapsed, answer = _timed(lambda n=node, t=token: web_call(n, "WebOnce", t))  # type: ignore[misc]
        assert answer == (503, "ServiceUnavailable") and elapsed < BOUND, (answer, elapsed)
        started = time.monotonic()
        with pytest.raises(ClientError) as refused:
            fleet.sts(node).assume_role(
                RoleArn=GUARDED, RoleSessionName="mfa", SerialNumber=MFA, TokenCode=code
            )
        assert time.monotonic() - started < BOUND
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert error["Error"]["Code"] == "ServiceUnavailable"
        assert error["Error"]["Type"] == "Receiver"
        assert "Try again shortly" in error["Error"]["Message"]
        assert PASSWORD not in error["Error"]["Message"]

        # A browser page: the broker's error page, with its headers.
        elapsed, page = _timed(lambda n=node: browser.get(f"{n}/roles"))  # type: ignore[misc]
        assert page.status_code == 503 and elapsed < BOUND, (page.status_code, elapsed)
        assert page.headers["content-type"].startswith("text/html")
        assert "Service unavailable" in page.text and "ServiceUnavailable" in page.text
        assert "content-security-policy" in page.headers
        assert page.headers["retry-after"] == "5"

        # The CLI's JSON endpoints: RFC 6749's shape.
        elapsed, started_device = _timed(
            lambda n=node: httpx.post(  # type: ignore[misc]
                f"{n}/cli/device", data={"code_challenge": challenge_of(new_verifier())}
            )
        )
        assert started_device.status_code == 503 and elapsed < BOUND
        assert started_device.json()["error"] == "temporarily_unavailable"
        polled = httpx.post(
            f"{node}/cli/token",
            data={"grant_type": "refresh_token", "refresh_token": "x" * 43},
        )
        assert polled.status_code == 503 and polled.json()["error"] == "temporarily_unavailable"

        # A role session's signed call reads its role's revocation record (the kill
        # switch for a leaked session must not be bypassed by taking Redis down).
        with pytest.raises(ClientError) as refused:
            fleet.sts(node, **session_creds).get_caller_identity()
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

        # Stateless paths keep answering: long-term keys, a GetSessionToken session.
        caller = fleet.sts(node).get_caller_identity()["Arn"]
        assert caller == f"arn:aws:iam::{DEV}:user/alice"
        plain_session = fleet.sts(node, **user_session).get_caller_identity()["Arn"]
        assert plain_session == f"arn:aws:iam::{DEV}:user/alice"
        assumed = fleet.sts(node).assume_role(RoleArn=PLAIN, RoleSessionName="during")
        assert assumed["AssumedRoleUser"]["Arn"].endswith("/Plain/during")
        assert web_call(node, "WebReuse", fleet.id_token("reuse")) == (200, "OK")
        assert httpx.get(f"{node}/healthz").status_code == 200


def _everything_works(fleet: Fleet, browser: httpx.Client) -> None:
    for node in fleet.nodes:
        assert saml_call(node, fleet.assertion()) == (200, "OK")
        assert web_call(node, "WebOnce", fleet.id_token("once")) == (200, "OK")
        fleet.sts(node).assume_role(
            RoleArn=GUARDED, RoleSessionName="mfa", SerialNumber=MFA, TokenCode=fleet.next_code()
        )
        device = httpx.post(f"{node}/cli/device", data={"code_challenge": challenge_of("v" * 43)})
        assert device.status_code == 200, device.text
        roles = browser.get(f"{node}/roles")
        assert roles.status_code == 200 and READER in roles.text


def test_redis_outage_fails_store_paths_closed_and_the_fleet_recovers_by_itself(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="broker")
    before = fleet.sts(fleet.a).assume_role(RoleArn=PLAIN, RoleSessionName="before")
    creds = before["Credentials"]
    session_creds = client_credentials(creds)
    user_session = client_credentials(
        fleet.sts(fleet.a).get_session_token(DurationSeconds=900)["Credentials"]
    )
    with httpx.Client(timeout=30) as browser:
        sign_in(fleet, browser, start_on=fleet.a)
        _everything_works(fleet, browser)

        # Hung: the server accepts connections and never answers. Bounded by the timeout.
        fleet.redis.pause()
        try:
            _store_paths_fail_closed(fleet, browser, session_creds, user_session)
        finally:
            fleet.redis.resume()
        # Same data (a pause forgets nothing): the browser session made before still works.
        _everything_works(fleet, browser)

        # Gone: connections refused. Then a new server on the same port, with empty memory.
        fleet.redis.stop()
        try:
            _store_paths_fail_closed(fleet, browser, session_creds, user_session)
        finally:
            fleet.redis.start()
        assert browser.get(f"{fleet.a}/roles").status_code == 303  # its session died with Redis
        sign_in(fleet, browser, start_on=fleet.b)
        _everything_works(fleet, browser)

    warnings = [
        r.getMessage() for r in caplog.records if "state store unavailable" in r.getMessage()
    ]
    assert warnings, "the outage was not logged"
    assert any(f"127.0.0.1:{fleet.redis.port}" in w for w in warnings)
    assert PASSWORD not in caplog.text


def test_a_full_memory_store_fails_closed_like_an_unreachable_one() -> None:
    """The memory store refuses to evict live entries when full (that would re-open
    replays): the same 503 as a Redis outage, and the stateless path still answers."""
    from broker.clock import SystemClock  # noqa: PLC0415
    from broker.config import BrokerConfig  # noqa: PLC0415
    from broker.store import MemoryStore  # noqa: PLC0415

    alice = _key(0)
    seed = base64.b32encode(os.urandom(20)).decode()
    sock = bind_loopback()
    root = f"arn:aws:iam::{DEV}:root"
    config = BrokerConfig.model_validate(
        {
            "public_url": f"http://127.0.0.1:{sock.getsockname()[1]}",
            "accounts": {
                DEV: {
                    "users": {
                        "alice": {
                            "access_keys": [{"id": alice.id, "secret": alice.secret}],
                            "mfa_devices": [{"serial": MFA, "totp_secret": seed}],
                            "policies": {
                                "assume": {
                                    "Version": "2012-10-17",
                                    "Statement": [
                                        {
                                            "Effect": "Allow",
                                            "Action": "sts:AssumeRole",
                                            "Resource": "*",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                    "roles": {
                        "Plain": {"trust_policy": _trust({"AWS": root}, "sts:AssumeRole")},
                    },
                }
            },
        },
        context={"base_dir": None},
    )
    clock = SystemClock()
    full = MemoryStore(clock, max_entries=0)
    url, running = start_server(create_app(config, clock=clock, store=full), sock)
    try:
        sts = boto3.client(
            "sts",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=alice.id,
            aws_secret_access_key=alice.secret,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        code = totp_now(decode_secret(seed), time.time())
        with pytest.raises(ClientError) as refused:
            sts.get_session_token(SerialNumber=MFA, TokenCode=code)
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert sts.assume_role(RoleArn=PLAIN, RoleSessionName="still-works")["Credentials"]
    finally:
        stop_server(running)
