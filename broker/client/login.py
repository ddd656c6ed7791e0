"""``sts-broker login``, ``credential-process`` and ``console``: the client of
:mod:`broker.web.cli_routes`.

**Browser login.** A random PKCE ``code_verifier`` and ``state``; a listener on
``127.0.0.1:<random port>`` that answers ``GET /callback`` once; the browser opened on
``/cli/authorize`` (``webbrowser``, so ``$BROWSER`` is honoured; the URL is printed too).
After the person approves, the broker redirects the browser to the listener with a code;
the CLI checks ``state`` (a callback this login did not start is refused: someone else's
code would give us *their* credentials), then redeems the code with the verifier.

**Device login** (``--no-browser``): the broker gives a user code to type at
``/cli/device``; the CLI polls ``/cli/token`` at the interval the broker asks for.

Either way the answer goes to the cache (:mod:`broker.client.cache`) and, unless
``--print-exports``, to the AWS shared files (:mod:`broker.client.profiles`). Messages for
people go to stderr; stdout carries only what scripts consume (exports, the
``credential_process`` JSON, the console URL).
"""

from __future__ import annotations

import argparse
import hmac
import json
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
from broker.client.cache import DEFAULT_REFRESH_BEFORE, CachedLogin, CacheError, CredentialCache
from broker.pkce import challenge_of, new_verifier

EXIT_FAILED = 1
EXIT_USAGE = 2
LOGIN_TIMEOUT = 300.0
CALLBACK_PATH = "/callback"


class LoginError(Exception):
    """The login did not produce credentials; the message says why and what to do."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- loopback listener


@dataclass
class Callback:
    """The one ``/callback`` request the listener accepted."""

    params: dict[str, list[str]]


_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>sts-broker</title>"
    "<body style='font-family:system-ui;margin:3rem'><h1>{title}</h1><p>{text}</p></html>"
)


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
            self._answer(200, "Signed in", "Return to your terminal; you can close this tab.")
        else:
            self._answer(400, "No credentials", "Nothing was sent to the terminal.")

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=title, text=text).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the authorization code."""


class _Listener(HTTPServer):
    callback: Callback | None = None
    state = ""


def _listen(state: str) -> _Listener:
    listener = _Listener(("127.0.0.1", 0), _Handler)
    listener.state = state
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


def _wanted(provider: str, role: str, duration: int | None) -> dict[str, str]:
    """What the person asked for on the command line, as the broker's parameters."""
    wanted = {"provider": provider, "role": role, "duration": str(duration or "")}
    return {key: value for key, value in wanted.items() if value}


def browser_flow(
    broker: str,
    *,
    provider: str,
    role: str,
    duration: int | None,
    timeout: float = LOGIN_TIMEOUT,
) -> dict[str, Any]:
    """The token answer through the loopback flow (see module doc)."""
    verifier = new_verifier()
    state = secrets.token_urlsafe(24)
    listener = _listen(state)
    try:
        port = listener.server_address[1]
        params = {
            "port": str(port),
            "code_challenge": challenge_of(verifier),
            "code_challenge_method": "S256",
            "state": state,
            **_wanted(provider, role, duration),
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


def device_flow(broker: str, *, provider: str, role: str, duration: int | None) -> dict[str, Any]:
    """The token answer through the device flow (RFC 8628), polling as the broker says."""
    verifier = new_verifier()
    form = {
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        **_wanted(provider, role, duration),
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


# ---------------------------------------------------------------------- commands


def add_commands(sub: Any) -> None:
    """The three subcommands, on the ``sts-broker`` parser's subparsers."""
    login = sub.add_parser("login", help="sign in through the broker; write an AWS profile")
    login.add_argument("--broker", required=True, help="the broker's URL")
    login.add_argument("--provider", default="", help="login provider name (else: choose)")
    login.add_argument("--role", default="", help="role ARN (else: choose in the browser)")
    login.add_argument("--profile", default="sts-broker", help="AWS profile name to write")
    login.add_argument("--duration", type=int, help="session seconds (900-43200)")
    login.add_argument(
        "--no-browser", action="store_true", help="print a URL and a code instead (device flow)"
    )
    login.add_argument(
        "--print-exports",
        action="store_true",
        help="print shell exports instead of writing ~/.aws/credentials and ~/.aws/config",
    )
    login.add_argument("--timeout", type=float, default=LOGIN_TIMEOUT, help=argparse.SUPPRESS)

    process = sub.add_parser(
        "credential-process", help="print cached credentials for the AWS CLI's credential_process"
    )
    process.add_argument("--profile", default="sts-broker")
    process.add_argument(
        "--refresh-before",
        type=float,
        default=DEFAULT_REFRESH_BEFORE,
        metavar="S",
        help="refresh when fewer than S seconds remain (default 300)",
    )

    console = sub.add_parser("console", help="open the console with cached credentials")
    console.add_argument("--profile", default="sts-broker")
    console.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")


def run_login(args: argparse.Namespace) -> int:
    from broker.client.profiles import write_profiles  # noqa: PLC0415 - login only, heavy imports
    from broker.client.snippets import ENV_NAMES, posix_quote  # noqa: PLC0415 - same

    try:
        broker = api.broker_url(args.broker)
    except ValueError as exc:
        _say(f"sts-broker login: {exc}")
        return EXIT_USAGE
    cache = CredentialCache()
    try:
        cache.path(args.profile)
        if args.duration is not None and not 900 <= args.duration <= 43200:
            raise LoginError("--duration must be 900-43200 seconds")
        options = {"provider": args.provider, "role": args.role, "duration": args.duration}
        if args.no_browser:
            body = device_flow(broker, **options)
        else:
            body = browser_flow(broker, timeout=args.timeout, **options)
        if args.role and body.get("RoleArn") != args.role:
            raise LoginError(f"the broker sent credentials for {body.get('RoleArn')!r}")
        login = CachedLogin.from_token(broker, body, args.duration)
        cache.save(args.profile, login)
    except (LoginError, CacheError) as exc:
        _say(f"sts-broker login: {exc}")
        return EXIT_FAILED
    except api.BrokerError as exc:
        _say(f"sts-broker login: the broker refused: {exc}")
        return EXIT_FAILED
    who = body.get("AssumedRoleArn") or login.role_arn
    if args.print_exports:
        for name, key in ENV_NAMES:
            print(f"export {name}={posix_quote(login.credentials[key])}")
        print(f"export AWS_ENDPOINT_URL_STS={posix_quote(broker)}")
    else:
        for warning in write_profiles(args.profile, broker, login.credentials):
            _say(f"warning: {warning}")
        _say(
            f"Profile {args.profile!r} (refreshing, credential_process) and "
            f"{args.profile}-static (these keys) written."
        )
    _say(f"Signed in as {who}; credentials expire {login.credentials['Expiration']}.")
    return 0


def run_credential_process(args: argparse.Namespace) -> int:
    try:
        login = CredentialCache().fresh(
            args.profile, refresh_before=args.refresh_before, now=time.time()
        )
    except CacheError as exc:
        _say(f"sts-broker credential-process: {exc}")
        return EXIT_FAILED
    print(json.dumps(login.process_output()))
    return 0


def run_console(args: argparse.Namespace) -> int:
    try:
        login = CredentialCache().fresh(
            args.profile, refresh_before=DEFAULT_REFRESH_BEFORE, now=time.time()
        )
        signin = api.signin_token(login.broker, login.credentials)
    except CacheError as exc:
        _say(f"sts-broker console: {exc}")
        return EXIT_FAILED
    except api.BrokerError as exc:
        _say(f"sts-broker console: the broker refused: {exc.description or exc.error}")
        return EXIT_FAILED
    url = api.console_login_url(login.broker, signin)
    print(url, flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    return 0
