"""Browser sessions and login binding: cookies, timeouts, rotation, logout, single use."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Coroutine
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.requests import Request
from starlette.responses import Response

from broker.clock import FrozenClock
from broker.config import BrokerConfig
from broker.store import MemoryStore, SqliteStore, Store
from broker.web import (
    BrowserSessions,
    CookiePolicy,
    InsecureWebOriginError,
    LoginBinding,
    LoginBindingError,
    PendingLogin,
    Session,
    SessionExpiredError,
    cookie_key,
)
from broker.web.cookies import derive_key

T = TypeVar("T")
KEY = b"k" * 32
LOCAL = "http://127.0.0.1:8080"
PUBLIC = "https://sts.example.com"
START = 1_700_000_000.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def request(*cookies: tuple[str, str]) -> Request:
    """A request carrying exactly these cookies, in one Cookie header."""
    headers: list[tuple[bytes, bytes]] = []
    if cookies:
        value = "; ".join(f"{k}={v}" for k, v in cookies)
        headers.append((b"cookie", value.encode("latin-1")))
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def set_cookies(response: Response) -> dict[str, dict[str, str]]:
    """Set-Cookie headers by name: {"value": ..., "samesite": ..., flags as "true"}."""
    out: dict[str, dict[str, str]] = {}
    for header in response.headers.getlist("set-cookie"):
        name = header.split("=", 1)[0]
        parsed = SimpleCookie()
        parsed.load(header)
        morsel = parsed[name]
        out[name] = {"value": morsel.value, "raw": header}
        for attr in ("path", "domain", "samesite", "max-age"):
            if morsel[attr]:
                out[name][attr] = str(morsel[attr]).lower()
        for flag in ("secure", "httponly"):
            if morsel[flag]:
                out[name][flag] = "true"
    return out


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads, to prove forged cookies never reach the Store."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock)
        self.gets = 0

    async def get(self, namespace: str, key: str) -> bytes | None:
        self.gets += 1
        return await super().get(namespace, key)


def sessions_for(
    url: str = LOCAL, *, store: Store | None = None, clock: FrozenClock | None = None
) -> tuple[BrowserSessions, FrozenClock, Store]:
    clock = clock or FrozenClock(START)
    store = store or MemoryStore(clock)
    policy = CookiePolicy.for_public_url(url)
    return BrowserSessions(store, clock, key=KEY, cookies=policy), clock, store


def login_as(sessions: BrowserSessions, data: dict[str, Any], *cookies: tuple[str, str]) -> str:
    """Create a session; return the cookie value the browser would now hold."""
    response = Response()
    run(sessions.create(request(*cookies), response, data))
    return set_cookies(response)[sessions.cookies.session_name]["value"]


def load(sessions: BrowserSessions, cookie: str) -> Session | None:
    return run(sessions.load(request((sessions.cookies.session_name, cookie))))


# --------------------------------------------------------------------------- cookies


def test_http_loopback_cookie_has_no_secure_flag_and_no_prefix() -> None:
    sessions, _, _ = sessions_for(LOCAL)
    response = Response()
    run(sessions.create(request(), response, {"user": "alice"}))
    cookie = set_cookies(response)["sts-broker"]
    assert cookie["httponly"] == "true"
    assert cookie["samesite"] == "lax"
    assert cookie["path"] == "/"
    assert "secure" not in cookie
    assert "domain" not in cookie
    assert "max-age" not in cookie  # ends with the browser; the server enforces the rest
    session_id, mac = cookie["value"].split(".")
    assert len(base64.urlsafe_b64decode(session_id + "=")) == 32  # 256 random bits
    assert len(base64.urlsafe_b64decode(mac + "==")) == 16


def test_https_cookies_use_host_prefix_secure_and_samesite() -> None:
    sessions, clock, store = sessions_for(PUBLIC)
    response = Response()
    run(sessions.create(request(), response, {"user": "alice"}))
    cookie = set_cookies(response)["__Host-sts-broker"]
    assert (cookie["secure"], cookie["httponly"], cookie["samesite"], cookie["path"]) == (
        "true",
        "true",
        "lax",
        "/",
    )
    assert "domain" not in cookie
    binding = LoginBinding(store, clock, sessions.cookies, return_prefixes=["/roles"])
    response = Response()
    run(binding.begin(request(), response, kind="saml", request_id="_r1", return_to="/roles"))
    login = set_cookies(response)["__Host-sts-broker-login"]
    assert (login["secure"], login["httponly"], login["samesite"], login["path"]) == (
        "true",
        "true",
        "none",
        "/",
    )
    assert login["max-age"] == "600"
    assert "domain" not in login


@pytest.mark.parametrize(
    "url", ["http://sts.example.com", "http://10.0.0.5:8080", "ftp://127.0.0.1"]
)
def test_plain_http_off_loopback_is_refused(url: str) -> None:
    with pytest.raises(InsecureWebOriginError, match="needs an https:// public_url"):
        CookiePolicy.for_public_url(url)


def test_loopback_spellings_are_accepted() -> None:
    for url in ("http://localhost:9", "http://[::1]:8080", "http://127.0.0.2"):
        assert CookiePolicy.for_public_url(url) == CookiePolicy(
            False, "sts-broker", "sts-broker-login"
        )


# --------------------------------------------------------------------------- lifecycle


def test_create_load_save_round_trip() -> None:
    sessions, clock, _ = sessions_for()
    cookie = login_as(sessions, {"user": "alice", "roles": ["Dev"]})
    session = load(sessions, cookie)
    assert session is not None
    assert dict(session.data) == {"user": "alice", "roles": ["Dev"]}
    assert (session.created_at, session.last_seen) == (START, START)
    assert cookie.split(".")[0] not in repr(session)  # the ID is a bearer secret
    clock.advance(10)
    saved = run(sessions.save(session, {"user": "alice", "role": "Dev"}))
    assert (saved.id, saved.created_at, saved.last_seen) == (session.id, START, START + 10)
    again = load(sessions, cookie)
    assert again is not None
    assert dict(again.data) == {"user": "alice", "role": "Dev"}
    with pytest.raises(TypeError):
        again.data["user"] = "mallory"  # type: ignore[index]


def test_store_holds_neither_the_session_id_nor_the_cookie(tmp_path: Path) -> None:
    clock = FrozenClock(START)
    store = SqliteStore(tmp_path / "state.db", clock)
    sessions, _, _ = sessions_for(store=store, clock=clock)
    cookie = login_as(sessions, {"user": "alice"})
    session_id = cookie.split(".")[0]
    run(store.close())
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"alice" in stored  # the data is there...
    assert session_id.encode() not in stored  # ...under a hash of the ID, never the ID


def test_idle_timeout_slides_on_each_load_and_is_enforced() -> None:
    sessions, clock, _ = sessions_for()
    cookie = login_as(sessions, {"user": "alice"})
    for _ in range(5):
        clock.advance(899)
        assert load(sessions, cookie) is not None  # each request restarts the idle timer
    clock.advance(900)
    assert load(sessions, cookie) is None


def test_idle_timeout_is_checked_from_the_stored_timestamp() -> None:
    """Even a Store that kept the records too long cannot extend a session."""
    sessions, clock, store = sessions_for()
    cookie = login_as(sessions, {"user": "alice"})
    key = next(k for (ns, k) in store._data if ns == "web-session" and k.endswith(":seen"))  # type: ignore[attr-defined]
    run(store.put("web-session", key, repr(START).encode(), 10_000))  # stale "seen", long TTL
    clock.advance(901)
    assert load(sessions, cookie) is None
    assert [k for (ns, k) in store._data if ns == "web-session"] == []  # type: ignore[attr-defined]


def test_absolute_timeout_ends_even_an_active_session() -> None:
    sessions, clock, _ = sessions_for()
    cookie = login_as(sessions, {"user": "alice"})
    while clock.time() + 600 < START + 28800:
        clock.advance(600)
        assert load(sessions, cookie) is not None
    clock.set(START + 28800)
    assert load(sessions, cookie) is None


def test_custom_timeouts_and_their_bounds() -> None:
    clock = FrozenClock(START)
    store = MemoryStore(clock)
    policy = CookiePolicy.for_public_url(LOCAL)
    sessions = BrowserSessions(
        store, clock, key=KEY, cookies=policy, idle_seconds=60, absolute_seconds=120
    )
    cookie = login_as(sessions, {})
    clock.advance(59)
    assert load(sessions, cookie) is not None
    clock.advance(59)
    assert load(sessions, cookie) is not None
    clock.advance(2)
    assert load(sessions, cookie) is None  # 120 s absolute, though idle only 2 s
    with pytest.raises(ValueError, match="idle_seconds <= absolute_seconds"):
        BrowserSessions(
            store, clock, key=KEY, cookies=policy, idle_seconds=121, absolute_seconds=120
        )
    with pytest.raises(ValueError, match="at least 32 bytes"):
        BrowserSessions(store, clock, key=b"short", cookies=policy)


def test_save_after_logout_or_timeout_does_not_resurrect_the_session() -> None:
    sessions, clock, _ = sessions_for()
    cookie = login_as(sessions, {"user": "alice"})
    session = load(sessions, cookie)
    assert session is not None
    run(sessions.destroy(request(("sts-broker", cookie)), Response()))
    with pytest.raises(SessionExpiredError):
        run(sessions.save(session, {"user": "mallory"}))
    assert load(sessions, cookie) is None

    cookie = login_as(sessions, {"user": "alice"})
    session = load(sessions, cookie)
    assert session is not None
    clock.advance(900)
    with pytest.raises(SessionExpiredError):
        run(sessions.save(session, {"user": "alice"}))
    assert load(sessions, cookie) is None


def test_session_data_must_be_plain_json() -> None:
    sessions, _, _ = sessions_for()
    with pytest.raises(TypeError):
        login_as(sessions, {"when": object()})
    with pytest.raises(ValueError):
        login_as(sessions, {"x": float("nan")})


# --------------------------------------------------------------------------- forged cookies


def test_forged_and_tampered_cookies_are_refused_without_a_store_lookup() -> None:
    clock = FrozenClock(START)
    store = CountingStore(clock)
    sessions, _, _ = sessions_for(store=store, clock=clock)
    cookie = login_as(sessions, {"user": "alice"})
    session_id, mac = cookie.split(".")
    other_key = BrowserSessions(
        store, clock, key=b"o" * 32, cookies=CookiePolicy.for_public_url(LOCAL)
    )
    foreign = login_as(other_key, {"user": "mallory"})
    flipped = ("B" if session_id[0] == "A" else "A") + session_id[1:]
    forged = [
        "A" * 43 + "." + "A" * 22,  # made-up ID and MAC
        f"{flipped}.{mac}",  # ID altered, MAC kept
        f"{session_id}.{'A' * 22}",  # MAC altered
        f"{session_id}.{mac[:-1]}",  # MAC truncated
        session_id,  # no MAC at all
        f"{session_id}.{mac}.x",  # extra part
        foreign,  # a real cookie under another broker's key
        f"{session_id}.{mac}" + "A" * 600,  # oversized
        "",
    ]
    store.gets = 0
    for value in forged:
        assert load(sessions, value) is None, value
    assert store.gets == 0
    assert load(sessions, cookie) is not None
    assert store.gets == 2  # the real one: data record and "seen" record


def test_two_session_cookies_of_the_same_name_are_refused() -> None:
    """A second cookie planted under another Path must not let the browser pick either."""
    sessions, _, _ = sessions_for()
    mine = login_as(sessions, {"user": "alice"})
    theirs = login_as(sessions, {"user": "mallory"})
    both = request(("sts-broker", theirs), ("sts-broker", mine))
    assert run(sessions.load(both)) is None
    assert load(sessions, mine) is not None


# --------------------------------------------------------------------------- rotation, logout


def test_login_rotates_the_id_and_ends_the_planted_session() -> None:
    sessions, _, _ = sessions_for()
    planted = login_as(sessions, {"anonymous": True})  # attacker's own pre-login session
    after_login = login_as(sessions, {"user": "alice"}, ("sts-broker", planted))
    assert after_login.split(".")[0] != planted.split(".")[0]
    assert load(sessions, planted) is None  # the attacker's ID never sees alice's data
    session = load(sessions, after_login)
    assert session is not None
    assert dict(session.data) == {"user": "alice"}


def test_logout_deletes_the_server_side_records_and_clears_the_cookie() -> None:
    sessions, _, store = sessions_for()
    cookie = login_as(sessions, {"user": "alice"})
    assert len([k for (ns, k) in store._data if ns == "web-session"]) == 2  # type: ignore[attr-defined]
    response = Response()
    run(sessions.destroy(request(("sts-broker", cookie)), response))
    assert [k for (ns, k) in store._data if ns == "web-session"] == []  # type: ignore[attr-defined]
    cleared = set_cookies(response)["sts-broker"]
    assert (cleared["value"], cleared["max-age"]) == ("", "0")
    assert load(sessions, cookie) is None  # a copied cookie is worthless after logout


# --------------------------------------------------------------------------- CSRF tokens


def test_csrf_token_is_an_hmac_of_the_session_not_the_id() -> None:
    sessions, _, _ = sessions_for()
    alice, bob = login_as(sessions, {"u": "a"}), login_as(sessions, {"u": "b"})
    session_a, session_b = load(sessions, alice), load(sessions, bob)
    assert session_a is not None
    assert session_b is not None
    token = sessions.csrf_token(session_a)
    assert token == sessions.csrf_token(session_a)
    assert token != sessions.csrf_token(session_b)
    assert session_a.id not in token
    assert alice.split(".")[1] not in token
    assert sessions.csrf_token_matches(request(("sts-broker", alice)).headers, token)
    assert not sessions.csrf_token_matches(request(("sts-broker", bob)).headers, token)
    assert not sessions.csrf_token_matches(request().headers, token)
    assert not sessions.csrf_token_matches(request(("sts-broker", alice)).headers, token[:-1])
    assert not sessions.csrf_token_matches(request(("sts-broker", alice)).headers, "é" + token[1:])


# --------------------------------------------------------------------------- keys


def _config(**extra: Any) -> BrokerConfig:
    return BrokerConfig.model_validate(
        {"public_url": LOCAL, "accounts": {}, **extra}, context={"base_dir": None}
    )


def test_cookie_key_configured_derived_or_ephemeral(caplog: pytest.LogCaptureFixture) -> None:
    configured = base64.b64encode(b"c" * 32).decode()
    token = base64.b64encode(b"t" * 32).decode()
    assert cookie_key(_config(web={"cookie_key": configured})) == b"c" * 32
    derived = cookie_key(_config(token_keys=[{"id": "a", "secret": token}]))
    assert derived == derive_key(b"t" * 32, b"sts-broker web cookie key v1")
    assert derived != b"t" * 32
    assert len(derived) == 32
    both = _config(web={"cookie_key": configured}, token_keys=[{"id": "a", "secret": token}])
    assert cookie_key(both) == b"c" * 32  # configured wins over derived
    with caplog.at_level(logging.WARNING, logger="broker.web"):
        first, second = cookie_key(_config()), cookie_key(_config())
    assert first != second
    assert "ephemeral" in caplog.text


def test_sessions_from_config_agree_across_nodes() -> None:
    """Two nodes with the same token key share a Store: a cookie from one works on the other."""
    token = base64.b64encode(b"t" * 32).decode()
    config = _config(
        token_keys=[{"id": "a", "secret": token}],
        web={"session_idle_seconds": 60, "session_absolute_seconds": 300},
    )
    clock = FrozenClock(START)
    store = MemoryStore(clock)
    node_a = BrowserSessions.from_config(config, store, clock)
    node_b = BrowserSessions.from_config(config, store, clock)
    assert (node_a.idle_seconds, node_a.absolute_seconds) == (60, 300)
    assert load(node_b, login_as(node_a, {"user": "alice"})) is not None
    with pytest.raises(InsecureWebOriginError):
        BrowserSessions.from_config(_config(public_url="http://sts.example.com"), store, clock)


# --------------------------------------------------------------------------- login binding


def binding_for(
    url: str = PUBLIC, ttl: int = 600
) -> tuple[LoginBinding, CookiePolicy, FrozenClock, MemoryStore]:
    clock = FrozenClock(START)
    store = MemoryStore(clock)
    policy = CookiePolicy.for_public_url(url)
    binding = LoginBinding(
        store, clock, policy, return_prefixes=["/roles", "/credentials"], ttl_seconds=ttl
    )
    return binding, policy, clock, store


def begin(
    binding: LoginBinding,
    policy: CookiePolicy,
    *,
    kind: Any = "saml",
    cookie: str | None = None,
    return_to: str = "/roles/Dev",
) -> tuple[str, str]:
    """(handle, login cookie value) as a browser would hold them after being redirected."""
    response = Response()
    incoming = request((policy.login_name, cookie)) if cookie else request()
    handle = run(
        binding.begin(incoming, response, kind=kind, request_id="_req-1", return_to=return_to)
    )
    return handle, set_cookies(response)[policy.login_name]["value"]


def finish(
    binding: LoginBinding, policy: CookiePolicy, handle: str, cookie: str | None, kind: Any = "saml"
) -> PendingLogin:
    incoming = request((policy.login_name, cookie)) if cookie else request()
    return run(binding.finish(incoming, handle, kind=kind))


def refusal(
    binding: LoginBinding, policy: CookiePolicy, handle: str, cookie: str | None, kind: Any = "saml"
) -> str:
    with pytest.raises(LoginBindingError) as info:
        finish(binding, policy, handle, cookie, kind)
    if handle:
        assert handle not in str(info.value) + repr(info.value)
    return info.value.code


def test_login_binding_round_trip() -> None:
    binding, policy, clock, store = binding_for()
    handle, cookie = begin(binding, policy)
    assert len(handle) == 43
    assert handle != cookie
    stored = b"".join(v for (_, v) in store._data.values())
    assert handle.encode() not in stored
    assert cookie.encode() not in stored
    clock.advance(599)
    pending = finish(binding, policy, handle, cookie)
    assert pending == PendingLogin("saml", "_req-1", "/roles/Dev", START)


def test_replayed_handle_is_refused() -> None:
    binding, policy, _, _ = binding_for()
    handle, cookie = begin(binding, policy)
    finish(binding, policy, handle, cookie)
    assert refusal(binding, policy, handle, cookie) == "LoginHandleReplayed"


def test_concurrent_presentations_have_exactly_one_winner() -> None:
    binding, policy, _, _ = binding_for()
    handle, cookie = begin(binding, policy)

    async def race() -> list[object]:
        incoming = request((policy.login_name, cookie))
        attempts = [binding.finish(incoming, handle, kind="saml") for _ in range(20)]
        return list(await asyncio.gather(*attempts, return_exceptions=True))

    results = run(race())
    assert sum(isinstance(r, PendingLogin) for r in results) == 1
    codes = {r.code for r in results if isinstance(r, LoginBindingError)}
    assert codes == {"LoginHandleReplayed"}


def test_handle_from_another_browser_is_refused() -> None:
    binding, policy, _, _ = binding_for()
    attacker_handle, _ = begin(binding, policy)  # the attacker starts a login...
    _, victim_cookie = begin(binding, policy)  # ...the victim has a login cookie of their own
    # The attacker's IdP response, with the attacker's RelayState, posted from the victim's browser.
    assert refusal(binding, policy, attacker_handle, victim_cookie) == "LoginBrowserMismatch"
    # And the handle is spent: the attacker cannot use it afterwards either.
    assert refusal(binding, policy, attacker_handle, victim_cookie) == "LoginHandleReplayed"
    handle, _ = begin(binding, policy)
    assert refusal(binding, policy, handle, "caf\xe9") == "LoginBrowserMismatch"  # not a 500


def test_missing_login_cookie_is_refused_on_https_and_for_oidc() -> None:
    binding, policy, _, _ = binding_for(PUBLIC)
    handle, _ = begin(binding, policy)
    assert refusal(binding, policy, handle, None) == "LoginCookieMissing"
    binding, policy, _, _ = binding_for(LOCAL)
    handle, _ = begin(binding, policy, kind="oidc")
    assert refusal(binding, policy, handle, None, kind="oidc") == "LoginCookieMissing"


def test_http_saml_post_without_the_lax_cookie_relies_on_the_handle() -> None:
    binding, policy, _, _ = binding_for(LOCAL)
    handle, _ = begin(binding, policy)
    assert finish(binding, policy, handle, None).request_id == "_req-1"
    # A cookie that is present must still match, even on http.
    handle, _ = begin(binding, policy)
    other_handle, other_cookie = begin(binding, policy, cookie="x" * 43)
    assert other_cookie == "x" * 43
    assert refusal(binding, policy, handle, other_cookie) == "LoginBrowserMismatch"
    assert finish(binding, policy, other_handle, other_cookie).kind == "saml"


def test_expired_handle_is_refused() -> None:
    binding, policy, clock, _ = binding_for(ttl=600)
    handle, cookie = begin(binding, policy)
    clock.advance(600)
    assert refusal(binding, policy, handle, cookie) == "LoginHandleExpired"
    handle, cookie = begin(binding, policy)
    clock.advance(1200)  # long gone from the Store
    assert refusal(binding, policy, handle, cookie) == "LoginHandleUnknown"


def test_unknown_malformed_and_wrong_kind_handles_are_refused() -> None:
    binding, policy, _, _ = binding_for()
    handle, cookie = begin(binding, policy, kind="oidc")
    assert refusal(binding, policy, "A" * 43, cookie) == "LoginHandleUnknown"
    for bad in ("", "short", "A" * 44, "A" * 42 + "!", "A" * 42 + "\n"):
        assert refusal(binding, policy, bad, cookie) == "LoginHandleMalformed"
    assert refusal(binding, policy, handle, cookie, kind="saml") == "LoginKindMismatch"


def test_two_tabs_share_the_login_cookie_and_both_finish() -> None:
    binding, policy, _, _ = binding_for()
    first, cookie = begin(binding, policy)
    second, same = begin(binding, policy, cookie=cookie)
    assert same == cookie
    assert first != second
    assert finish(binding, policy, second, cookie).kind == "saml"
    assert finish(binding, policy, first, cookie).kind == "saml"
    _, fresh = begin(binding, policy, cookie="not a secret of ours")
    assert fresh != "not a secret of ours"


def test_return_to_is_made_safe_when_the_login_begins() -> None:
    binding, policy, _, _ = binding_for()
    for given, kept in (
        ("/credentials?role=Dev", "/credentials?role=Dev"),
        ("//evil.example/roles", "/"),
        ("/admin", "/"),
    ):
        handle, cookie = begin(binding, policy, return_to=given)
        assert finish(binding, policy, handle, cookie).return_to == kept


def test_begin_refuses_bad_arguments() -> None:
    binding, policy, _, _ = binding_for()
    with pytest.raises(ValueError, match="kind must be"):
        begin(binding, policy, kind="ldap")
    with pytest.raises(ValueError, match="request_id"):
        run(binding.begin(request(), Response(), kind="saml", request_id="a b", return_to="/"))
    with pytest.raises(ValueError, match="ttl_seconds"):
        LoginBinding(
            MemoryStore(FrozenClock(0)), FrozenClock(0), policy, return_prefixes=[], ttl_seconds=0
        )
