"""The console federation endpoint answers every query in its protocol, over real HTTP.

``/federation`` is unauthenticated: anyone can send it anything. Queries are generated
around real credentials (a genuine role session, pieces swapped, cut or replaced) and
around nothing at all; the answer is always 200, 302 or 400, JSON for ``getSigninToken``
and other actions, a redirect or the broker's error page for ``login``, with the page and
cache headers, and never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import DEV, Broker, served_broker
from tests.properties.budget import budget


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with served_broker(tmp_path_factory.mktemp("federation-properties")) as served:
        yield served


@pytest.fixture(scope="module")
def genuine(broker: Broker) -> dict[str, str]:
    creds = broker.sts("alice").assume_role(
        RoleArn=f"arn:aws:iam::{DEV}:role/Dev", RoleSessionName="prop"
    )["Credentials"]
    return {
        "sessionId": creds["AccessKeyId"],
        "sessionKey": creds["SecretAccessKey"],
        "sessionToken": creds["SessionToken"],
    }


@pytest.fixture(scope="module")
def client(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, follow_redirects=False, timeout=10) as http:
        yield http


_junk = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "{", "[" * 5000, "null", "{}", '{"sessionId": 1}', "%", "\x00"]),
)
_fields = st.sampled_from(["sessionId", "sessionKey", "sessionToken", "other"])


@st.composite
def _session(draw: st.DrawFn, genuine: dict[str, str]) -> str:
    kind = draw(st.sampled_from(["genuine", "edited", "junk"]))
    if kind == "junk":
        return draw(_junk)
    session: dict[str, Any] = dict(genuine)
    if kind == "edited":
        for _ in range(draw(st.integers(1, 3))):
            field = draw(_fields)
            session[field] = draw(
                st.one_of(
                    _junk,
                    st.sampled_from(list(genuine.values())),
                    st.integers(),
                    st.none(),
                    st.lists(st.text(max_size=3), max_size=2),
                )
            )
            if draw(st.booleans()):
                session.pop(draw(_fields), None)
    return json.dumps(session)


def _queries(genuine: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {"Action": st.sampled_from(["getSigninToken", "login", "logout", "", "GETSIGNINTOKEN"])},
        optional={
            "Session": _session(genuine),
            "SessionDuration": st.sampled_from(["900", "43200", "43201", "-1", "1e3", ""])
            | st.text(max_size=6),
            "SigninToken": _junk,
            "Destination": st.sampled_from(
                ["/console", "https://evil.example/", "//evil", "/console/../x", "\\x"]
            )
            | st.text(max_size=10),
            "Issuer": st.text(max_size=10),
        },
    )


def test_every_query_is_answered_in_the_protocol(
    client: httpx.Client, genuine: dict[str, str]
) -> None:
    @given(_queries(genuine))
    @settings(max_examples=budget(100), suppress_health_check=[HealthCheck.function_scoped_fixture])
    @example({"Action": "getSigninToken", "Session": "[" * 5000})
    @example({"Action": "getSigninToken", "Session": '{"a":' * 40 + "1" + "}" * 40})
    @example({"Action": "getSigninToken", "Session": '{"sessionId":"a","sessionId":"b"}'})
    @example({"Action": "login", "SigninToken": "x", "Destination": "/console"})
    def check(query: dict[str, str]) -> None:
        response = client.get("/federation", params=query)
        assert response.status_code in (200, 302, 400), (query, response.text[:200])
        content_type = response.headers.get("content-type", "")
        if query["Action"] == "login":
            assert response.status_code == 302 or content_type.startswith("text/html")
            if content_type.startswith("text/html"):
                assert "default-src 'none'" in response.headers["content-security-policy"]
        else:
            assert content_type == "application/json"
            body = response.json()
            assert set(body) in ({"SigninToken"}, {"Error"}), body
        assert response.headers["cache-control"] == "no-store"

    check()
