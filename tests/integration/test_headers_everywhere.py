"""Headers on every answer, whatever the config (issue 15, finding 3).

Every route the app has is walked, read from the app itself (``app.routes``, mounts
included), so a route added later is walked too: an API-only broker (no SAML, no login
providers: the configuration where the page middleware used to be missing) and the demo
broker (every page). Each answer must carry ``Cache-Control`` (``no-store`` except the
public key documents and static files), and every HTML answer the full page set: CSP,
``nosniff``, ``Referrer-Policy``, ``X-Frame-Options``, ``no-store`` and COOP. Then the
answers that carry a credential or a token are fetched for real (a SigninToken, the
console page behind its cookie) and checked the same way.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from broker.app import create_app, load_broker_config
from broker.config import load_config
from tests.integration.conftest import (
    DEV,
    _key,
    bind_loopback,
    start_server,
    stop_server,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
DEV_ROLE = f"arn:aws:iam::{DEV}:role/Dev"
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
CACHEABLE = ("/.well-known/", "/static/")
"""Public documents (the issuer's discovery and keys) and the stylesheet: no credential."""
NOT_WALKED = {"/_demo": "the demo IdPs are other sites and keep their own headers (broker.demo)"}


@dataclass
class Served:
    url: str
    app: Starlette


def _serve(app: Starlette, sock: object) -> Iterator[Served]:
    url, running = start_server(app, sock)  # type: ignore[arg-type]
    try:
        yield Served(url, app)
    finally:
        stop_server(running)


@pytest.fixture(scope="module")
def api_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("api-only")
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    sock = bind_loopback()
    path = folder / "broker.yaml"
    write_config(path, keys, {"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}, _url(sock))
    config = load_config(
        path, environ={"TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    )
    assert not config.login.providers and not any(
        a.saml_providers for a in config.accounts.values()
    )
    app = create_app(config)
    app.state.alice = keys["alice"]
    yield from _serve(app, sock)


@pytest.fixture(scope="module")
def demo() -> Iterator[Served]:
    sock = bind_loopback()
    config = load_broker_config(DEMO, environ={"STS_BROKER_PUBLIC_URL": _url(sock)})
    yield from _serve(create_app(config), sock)


def _url(sock: object) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"  # type: ignore[attr-defined]


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) for every route, path parameters filled in, mounts entered."""
    for route in routes:
        if isinstance(route, Mount):
            inner = route.routes
            if inner:
                yield from walk(list(inner), prefix + route.path)
            else:  # an app without routes (StaticFiles): its one known file
                yield "GET", prefix + route.path + "/style.css"
        elif isinstance(route, Route):
            path = re.sub(r"\{[^}]+\}", "corp", prefix + route.path)
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    yield method, path
        else:
            raise AssertionError(f"a route of a kind this walk does not know: {route!r}")


def check_answer(response: httpx.Response, where: str) -> None:
    headers = response.headers
    assert "cache-control" in headers, f"{where}: no Cache-Control"
    if not any(f" {prefix}" in where for prefix in CACHEABLE):
        assert headers["cache-control"] == "no-store", f"{where}: {headers['cache-control']}"
    if headers.get("content-type", "").startswith("text/html"):
        for name, value in PAGE_HEADERS.items():
            assert value in headers.get(name, ""), f"{where}: {name} is {headers.get(name)!r}"


def _walk_and_check(served: Served) -> set[tuple[str, str]]:
    walked = set(walk(list(served.app.routes)))
    with httpx.Client(base_url=served.url, follow_redirects=False, timeout=10) as client:
        for method, path in sorted(walked):
            assert not any(path.startswith(p) for p in NOT_WALKED), path
            body = b"" if method == "GET" else b"x=1"
            response = client.request(
                method,
                path,
                content=body or None,
                headers={"content-type": "application/x-www-form-urlencoded"} if body else {},
            )
            check_answer(response, f"{method} {path} ({response.status_code})")
            # The same route with the query a real client sends, where it has one.
            for query in QUERIES.get(path, ()):
                response = client.request(method, f"{path}?{query}")
                check_answer(response, f"{method} {path}?{query[:30]} ({response.status_code})")
    return walked


QUERIES = {
    "/federation": (
        "Action=getSigninToken&Session=%7B%7D",
        "Action=login&Destination=%2Fconsole&SigninToken=x",
        "Action=other",
    ),
    "/": ("Action=GetCallerIdentity", "return_to=%2Froles"),
}


def test_every_route_of_an_api_only_broker(api_only: Served) -> None:
    walked = _walk_and_check(api_only)
    assert {("GET", "/federation"), ("GET", "/console"), ("POST", "/sts")} <= walked


def test_every_route_of_the_demo_broker(demo: Served) -> None:
    walked = _walk_and_check(demo)
    assert {("GET", "/roles"), ("POST", "/saml/acs"), ("GET", "/cli/device")} <= walked


def test_the_signin_token_and_the_console_of_an_api_only_broker(api_only: Served) -> None:
    """The answers that carry a bearer token, fetched for real."""
    import boto3  # noqa: PLC0415

    alice = api_only.app.state.alice
    sts = boto3.client(
        "sts",
        endpoint_url=api_only.url,
        region_name="us-east-1",
        aws_access_key_id=alice.id,
        aws_secret_access_key=alice.secret,
    )
    creds = sts.assume_role(RoleArn=DEV_ROLE, RoleSessionName="headers")["Credentials"]
    session = json.dumps(
        {
            "sessionId": creds["AccessKeyId"],
            "sessionKey": creds["SecretAccessKey"],
            "sessionToken": creds["SessionToken"],
        }
    )
    with httpx.Client(base_url=api_only.url, follow_redirects=False) as client:
        token = client.get("/federation", params={"Action": "getSigninToken", "Session": session})
        assert token.status_code == 200 and "SigninToken" in token.json()
        check_answer(token, "getSigninToken (200)")
        query = urlencode(
            {
                "Action": "login",
                "Destination": f"{api_only.url}/console",
                "SigninToken": token.json()["SigninToken"],
            }
        )
        login = client.get(f"/federation?{query}")
        assert login.status_code == 302
        check_answer(login, "login (302)")
        page = client.get("/console")
        assert page.status_code == 200 and "headers" in page.text
        check_answer(page, "GET /console (200)")
