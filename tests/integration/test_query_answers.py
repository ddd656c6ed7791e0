"""The STS Query API's answers carry their own headers, whatever else the broker serves.

Credentials travel in these answers, so ``Cache-Control: no-store`` is the API's own header
(``broker.sts.api.QueryAnswer``), not only something the browser sign-in's page middleware
adds: an API-only broker (no login providers, so no page middleware) says it too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from broker.app import create_app
from broker.config import BrokerConfig
from tests.integration.conftest import Broker, bind_loopback, start_server, stop_server

ANSWER_HEADERS = ["x-amzn-requestid", "content-length", "content-type", "cache-control"]
"""In this order (what the page middleware's pass used to produce), after uvicorn's own."""
SERVER_HEADERS = {"date", "server"}


@pytest.fixture(scope="module")
def api_only() -> Iterator[str]:
    sock = bind_loopback()
    config = BrokerConfig.model_validate(
        {"public_url": f"http://127.0.0.1:{sock.getsockname()[1]}", "accounts": {}},
        context={"base_dir": None},
    )
    url, running = start_server(create_app(config), sock)
    try:
        yield url
    finally:
        stop_server(running)


def _check(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert f"<Code>{code}</Code>" in response.text
    names = [name.decode().lower() for name, _ in response.headers.raw]
    assert [name for name in names if name not in SERVER_HEADERS] == ANSWER_HEADERS
    assert response.headers.get_list("cache-control") == ["no-store"]
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize("path", ["/", "/sts"])
def test_api_only_broker_answers_no_store(api_only: str, path: str) -> None:
    unsigned = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    _check(httpx.post(api_only + path, data=unsigned), 403, "MissingAuthenticationToken")
    _check(httpx.get(api_only + "/sts", params=unsigned), 403, "MissingAuthenticationToken")
    _check(httpx.post(api_only + path, data={"Action": "Nope"}), 400, "InvalidAction")


def test_broker_with_sign_in_answers_the_same_headers(broker: Broker) -> None:
    answer = broker.sts("alice").get_caller_identity()
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert headers["cache-control"] == "no-store"
    unsigned = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    _check(httpx.post(broker.url, data=unsigned), 403, "MissingAuthenticationToken")
