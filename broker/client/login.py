"""``sts-broker login``: the client of :mod:`broker.web.cli_routes`.

**Browser login.** A random PKCE ``code_verifier`` and ``state``; a listener on
``127.0.0.1:<random port>`` that answers ``GET /callback`` once; the browser opened on
``/cli/authorize`` (``webbrowser``, so ``$BROWSER`` is honoured; the URL is printed too).
After the person approves, the broker redirects the browser to the listener with a code;
the CLI checks ``state`` (a callback this login did not start is refused: someone else's
code would give us *their* credentials), then redeems the code with the verifier.

**Device login** (``--no-browser``): the broker gives a user code to type at
``/cli/device``; the CLI polls ``/cli/token`` at the interval the broker asks for.

Either way the answer goes to the cache (:mod:`broker.client.cache`) and, unless
``--print-exports``, to the AWS shared files (:mod:`broker.client.profiles`). With
``--all`` the broker answers for every role the sign-in may use, and each gets its own
cached login and refreshing profile. The broker URL, region and provider default to what
``sts-broker configure`` saved (:mod:`broker.client.settings`).

Messages for people go to stderr, ending with the next command to run; stdout carries only
what scripts consume (``--print-exports``).
"""

from __future__ import annotations

import argparse
import hmac
import html
import secrets
import sys
import threading
import time
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from broker.client import api
from broker.client.cache import DEFAULT_PROFILE, CachedLogin, CacheError, CredentialCache
from broker.client.settings import SettingsError, load_settings
from broker.pkce import challenge_of, new_verifier

EXIT_FAILED = 1
EXIT_USAGE = 2
LOGIN_TIMEOUT = 300.0
CALLBACK_PATH = "/callback"
FALLBACK_REGION = "us-east-1"
"""For a broker too old to say its region (every broker since ``Region`` was added does)."""


class LoginError(Exception):
    """The login did not produce credentials; the message says why and what to do."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- loopback listener


@dataclass
class Callback:
    """The one ``/callback`` request the listener accepted."""

    params: dict[str, list[str]]


_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · sts-broker</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{broker}/static/style.css">
</head>
<body>
  <header class="top">
    <span class="brand"><span class="logo" aria-hidden="true">◆</span> sts-broker</span>
  </header>
  <main id="main">
    <section class="card narrow outcome {kind}">
      <p class="outcome-mark" aria-hidden="true">{mark}</p>
      <h1>{title}</h1>
      <p>{text}</p>
      <p class="muted">{close}</p>
    </section>
  </main>
  <footer class="foot">The sts-broker CLI on this computer</footer>
</body>
</html>
"""
"""The tab's answer, in the broker's own design: its stylesheet, from the broker (the page
sends no referrer, so the code in this URL goes nowhere), nothing else; without it the page
is plain but says the same."""


class _Handler(BaseHTTPRequestHandler):
    server: _Listener
    timeout = 10  # a local process that connects and says nothing cannot hold the listener

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH or self.server.callback is not None:
            self._answer(404, "Not found", "Nothing here.")
            return
        params = parse_qs(parts.query, keep_blank_values=True)
        self.server.callback = Callback(params)
        state = _single(params, "state").encode()
        if not hmac.compare_digest(state, self.server.state.encode()):
            self._answer(400, "Refused", "This answer is not for the login in your terminal.")
        elif params.get("code"):
            self._answer(
                200, "Signed in", "Return to your terminal: it has your credentials.", ok=True
            )
        else:
            self._answer(400, "No credentials", "Nothing was sent to the terminal.")

    def _answer(self, status: int, title: str, text: str, *, ok: bool = False) -> None:
        broker = self.server.broker
        body = _PAGE.format(
            broker=html.escape(broker),
            kind="ok" if ok else "no",
            mark="✓" if ok else "✕",
            title=title,
            text=text,
            close="You can close this tab.",
        ).encode("utf-8")
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(broker)) if broker else "'none'"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; style-src {origin}; img-src data:; form-action 'none'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the authorization code."""


class _Listener(HTTPServer):
    callback: Callback | None = None
    state = ""
    broker = ""
    """The broker's URL: its stylesheet dresses the answer page."""


def _listen(state: str, broker: str) -> _Listener:
    listener = _Listener(("127.0.0.1", 0), _Handler)
    listener.state = state
    listener.broker = broker
    return listener


def _wait_for_callback(listener: _Listener, deadline: float) -> Callback:
    """Serve requests until the first ``GET /callback`` (others get 404) or the deadline."""
    while listener.callback is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoginError("timed out waiting for the browser; run sts-broker login again")
        listener.timeout = remaining
        listener.handle_request()
    return listener.callback


def _single(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name, [])
    return values[0] if len(values) == 1 else ""


# ---------------------------------------------------------------------- flows


def _wanted(provider: str, role: str, duration: int | None, every_role: bool) -> dict[str, str]:
    """What the person asked for on the command line, as the broker's parameters."""
    wanted = {
        "provider": provider,
        "role": role,
        "all_roles": "1" if every_role else "",
        "duration": str(duration or ""),
    }
    return {key: value for key, value in wanted.items() if value}


def browser_flow(
    broker: str,
    *,
    provider: str,
    role: str,
    duration: int | None,
    every_role: bool = False,
    timeout: float = LOGIN_TIMEOUT,
) -> dict[str, Any]:
    """The token answer through the loopback flow (see module doc)."""
    verifier = new_verifier()
    state = secrets.token_urlsafe(24)
    listener = _listen(state, broker)
    try:
        port = listener.server_address[1]
        params = {
            "port": str(port),
            "code_challenge": challenge_of(verifier),
            "code_challenge_method": "S256",
            "state": state,
            **_wanted(provider, role, duration, every_role),
        }
        url = f"{broker}/cli/authorize?{urlencode(params)}"
        _say(f"Opening your browser to sign in. If it does not open, visit:\n\n  {url}\n")
        # In a thread: a $BROWSER command may run until the browser closes, and the
        # listener must answer the callback meanwhile.
        opener = threading.Thread(target=webbrowser.open, args=(url,), daemon=True)
        opener.start()
        _say("Waiting for you to approve in the browser...")
        callback = _wait_for_callback(listener, time.monotonic() + timeout)
    finally:
        listener.server_close()
    opener.join(timeout=5)  # let a quick launcher finish rather than cut it off at exit
    got_state = _single(callback.params, "state")
    if not hmac.compare_digest(got_state.encode(), state.encode()):
        raise LoginError(
            "the browser's answer does not belong to this login (state mismatch): another "
            "site or program sent it. Nothing was saved; run sts-broker login again"
        )
    error = _single(callback.params, "error")
    if error:
        raise LoginError(f"the request was {'denied' if error == 'access_denied' else error}")
    code = _single(callback.params, "code")
    if not code:
        raise LoginError("the browser's answer has no code")
    return api.token(
        broker,
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
    )


def device_flow(
    broker: str, *, provider: str, role: str, duration: int | None, every_role: bool = False
) -> dict[str, Any]:
    """The token answer through the device flow (RFC 8628), polling as the broker says."""
    verifier = new_verifier()
    form = {
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        **_wanted(provider, role, duration, every_role),
    }
    start = api.post_form(broker, "/cli/device", form)
    device_code, user_code = start.get("device_code"), start.get("user_code")
    uri, complete = start.get("verification_uri"), start.get("verification_uri_complete")
    interval, expires_in = start.get("interval", 5), start.get("expires_in", 600)
    if not all(isinstance(v, str) for v in (device_code, user_code, uri)) or not isinstance(
        interval, int
    ):
        raise LoginError("the broker's device answer is malformed")
    if not isinstance(expires_in, int):
        expires_in = 600
    _say(
        f"To sign in, open {uri}\nand enter the code:  {user_code}\n"
        + (f"\n(or open {complete} )\n" if isinstance(complete, str) else "")
    )
    _say("Waiting for you to approve in the browser...")
    deadline = time.monotonic() + expires_in
    poll = {"grant_type": api.DEVICE_GRANT, "device_code": str(device_code)}
    poll["code_verifier"] = verifier
    while time.monotonic() < deadline:
        time.sleep(interval)  # RFC 8628 3.5: the broker sets the pace
        try:
            return api.token(broker, poll)
        except api.BrokerError as exc:
            if exc.error in ("authorization_pending", "temporarily_unavailable"):
                continue  # the latter: the broker's state store is down for a moment
            if exc.error == "slow_down":
                interval += 5
                continue
            if exc.error == "access_denied":
                raise LoginError("the request was denied in the browser") from None
            if exc.error == "expired_token":
                raise LoginError("the code expired; run sts-broker login again") from None
            raise
    raise LoginError("the code expired; run sts-broker login again")


# ---------------------------------------------------------------------- the command


@dataclass(frozen=True)
class Written:
    """One profile a login wrote."""

    profile: str
    login: CachedLogin
    who: str
    """The assumed-role session ARN the credentials act as."""


def run_login(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        _say(f"sts-broker login: {exc}")
        return EXIT_USAGE
    problem = _usage_problem(args)
    if problem:
        _say(f"sts-broker login: {problem}")
        return EXIT_USAGE
    if not (args.broker or settings.broker):
        _say(
            "sts-broker login: which broker? Run sts-broker configure --broker URL once "
            "(or pass --broker URL)"
        )
        return EXIT_USAGE
    try:
        broker = api.broker_url(args.broker or settings.broker)
    except ValueError as exc:
        _say(f"sts-broker login: {exc}")
        return EXIT_USAGE
    profile = args.profile or DEFAULT_PROFILE
    cache = CredentialCache()
    try:
        cache.path(profile)
        options = {
            "provider": args.provider or settings.provider,
            "role": args.role,
            "duration": args.duration,
            "every_role": args.all,
        }
        if args.no_browser:
            body = device_flow(broker, **options)
        else:
            body = browser_flow(broker, timeout=args.timeout or LOGIN_TIMEOUT, **options)
        region = args.region or settings.region or _region_of(body)
        if args.all:
            written = _save_all(cache, broker, body, args.duration, region)
        else:
            if args.role and body.get("RoleArn") != args.role:
                raise LoginError(f"the broker sent credentials for {body.get('RoleArn')!r}")
            login = CachedLogin.from_token(broker, body, args.duration, region)
            cache.save(profile, login)
            written = [Written(profile, login, str(body.get("AssumedRoleArn") or login.role_arn))]
    except (LoginError, CacheError, api.BrokerError) as exc:
        _say(f"sts-broker login: {exc}")
        return EXIT_FAILED
    if args.print_exports:
        return _print_exports(written[0])
    return _write_and_tell(written, every_role=args.all)


def _usage_problem(args: argparse.Namespace) -> str:
    if args.duration is not None and not 900 <= args.duration <= 43200:
        return "--duration must be 900-43200 seconds"
    if args.all and args.role:
        return "give --role or --all, not both"
    if args.all and args.profile:
        return "--all names each profile after its account and role; leave out --profile"
    if args.all and args.print_exports:
        return "--print-exports prints one role's credentials; leave out --all"
    return ""


def _region_of(body: dict[str, Any]) -> str:
    region = body.get("Region")
    return region if isinstance(region, str) and region else FALLBACK_REGION


def _save_all(
    cache: CredentialCache, broker: str, body: dict[str, Any], duration: int | None, region: str
) -> list[Written]:
    """Cache every role of a ``--all`` answer under its own profile name."""
    from broker.client.profiles import profile_name  # noqa: PLC0415 - login only

    logins = body.get("Logins")
    if not isinstance(logins, list):
        raise LoginError("the broker answered for one role only; is it older than --all?")
    written: list[Written] = []
    for item in logins:
        arn = item.get("RoleArn")
        if not isinstance(arn, str):
            raise LoginError("the broker's answer names no role")
        if not api.has_credentials(item):
            why = item.get("error_description") or item.get("error") or "no credentials"
            _say(f"warning: no credentials for {arn}: {why}")
            continue
        alias = item.get("AccountAlias")
        profile = profile_name(alias if isinstance(alias, str) else "", arn)
        login = CachedLogin.from_token(broker, item, duration, region)
        cache.save(profile, login)
        written.append(Written(profile, login, str(item.get("AssumedRoleArn") or arn)))
    if not written:
        raise LoginError("the broker gave credentials for no role")
    return written


def _print_exports(one: Written) -> int:
    from broker.client.snippets import credential_env, shell_lines  # noqa: PLC0415 - login only

    login = one.login
    env = credential_env(login.credentials, region=login.region, sts_endpoint=login.sts_endpoint)
    print(shell_lines(env, "posix"))
    _say(f"Signed in as {one.who}; credentials expire {login.credentials['Expiration']}.")
    return 0


def _write_and_tell(written: list[Written], *, every_role: bool) -> int:
    """Write the AWS profiles, then say what was written and what to run next."""
    from broker.client.profiles import write_profiles  # noqa: PLC0415 - login only

    for one in written:
        login = one.login
        for warning in write_profiles(
            one.profile, login.sts_endpoint, login.credentials, login.region, static=not every_role
        ):
            _say(f"warning: {warning}")
    first = written[0]
    if every_role:
        width = max(len(one.profile) for one in written)
        _say(f"{len(written)} profiles written (refreshing, credential_process):")
        for one in written:
            _say(f"  {one.profile:<{width}}  {one.login.role_arn}")
        _say(f"Signed in; credentials expire {first.login.credentials['Expiration']}.")
    else:
        _say(
            f"Profile {first.profile!r} (refreshing, credential_process) and "
            f"{first.profile}-static (these keys) written, region {first.login.region}."
        )
        _say(
            f"Signed in as {first.who}; credentials expire {first.login.credentials['Expiration']}."
        )
    _say(
        "\nNext:\n"
        f"  aws sts get-caller-identity --profile {first.profile}\n"
        f"  sts-broker exec --profile {first.profile} -- aws s3 ls\n"
        f"  sts-broker console --profile {first.profile}"
    )
    return 0
