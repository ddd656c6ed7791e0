"""The client's subcommands on the ``sts-broker`` parser, and the small ones themselves:
``configure``, ``credential-process``, ``console``, ``exec``, ``env``, ``logout``, ``list``
and ``totp`` (``login`` is :mod:`broker.client.login`, ``serve-credentials``
:mod:`broker.client.credential_server`).

Every option says what it does and its default in ``--help``. The modules a command needs
are imported inside it: ``credential-process`` runs on every AWS CLI call and, with fresh
cached credentials, loads nothing but the cache.

Exit statuses: 0 done, 1 the command could not do it (the message says why and what to
run), 2 a usage mistake. ``exec`` exits with the command's own status (127 when it does
not exist).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from broker.client import api
from broker.client.cache import (
    DEFAULT_PROFILE,
    DEFAULT_REFRESH_BEFORE,
    CachedLogin,
    CacheError,
    CredentialCache,
    parse_time,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXEC_REFRESH_BEFORE = 900
"""``exec`` hands the command keys that cannot refresh: give it at least 15 minutes."""
SETTINGS_HELP = "~/.config/sts-broker/config ($XDG_CONFIG_HOME/sts-broker/config)"
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
"""The public seed of alice's MFA device in config/demo.yaml."""

COMMANDS = frozenset(
    {
        "configure",
        "login",
        "credential-process",
        "console",
        "exec",
        "env",
        "logout",
        "list",
        "serve-credentials",
        "totp",
    }
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _profile_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        metavar="NAME",
        help=f"{what} (default: %(default)s)",
    )


def _refresh_option(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--refresh-before",
        type=float,
        default=default,
        metavar="SECONDS",
        help="refresh first when fewer than SECONDS remain (default: %(default)g)",
    )


def _shell_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--shell",
        choices=sorted(("bash", "zsh", "sh", "fish", "powershell", "pwsh")),
        help=f"syntax of the {what} (default: from $SHELL: fish, else bash/zsh)",
    )


def add_commands(sub: Any) -> None:
    """Every client subcommand, on the ``sts-broker`` parser's subparsers."""
    configure = sub.add_parser(
        "configure",
        help="save the broker URL, region and login provider for the other commands",
        description=f"Save defaults in {SETTINGS_HELP}; with no option, ask for each.",
    )
    configure.add_argument("--broker", metavar="URL", help="the broker's URL (https://...)")
    configure.add_argument(
        "--region",
        help="region for the profiles login writes (default: the broker's own region)",
    )
    configure.add_argument(
        "--provider", metavar="NAME", help="login provider to use, e.g. corp (default: ask)"
    )

    login = sub.add_parser(
        "login", help="sign in through the broker in the browser; write AWS profiles"
    )
    login.add_argument(
        "--broker",
        metavar="URL",
        default="",
        help=f"the broker's URL (default: the one sts-broker configure saved in {SETTINGS_HELP})",
    )
    login.add_argument(
        "--provider",
        metavar="NAME",
        default="",
        help="login provider, e.g. corp (default: the configured one, else choose in the browser)",
    )
    login.add_argument(
        "--role", metavar="ARN", default="", help="role ARN (default: choose in the browser)"
    )
    login.add_argument(
        "--all",
        action="store_true",
        help="one refreshing profile per role you may use, named ALIAS-ROLE (e.g. dev-ReadOnly)",
    )
    login.add_argument(
        "--profile",
        metavar="NAME",
        default="",
        help=f"AWS profile to write (default: {DEFAULT_PROFILE}; with --all, ALIAS-ROLE)",
    )
    login.add_argument(
        "--region",
        default="",
        help="the profiles' region (default: the configured one, else the broker's)",
    )
    login.add_argument(
        "--duration",
        type=int,
        metavar="SECONDS",
        help="session length, 900-43200, capped at the role's maximum (default: 3600)",
    )
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="print a URL and a code to enter on any device instead (device flow)",
    )
    login.add_argument(
        "--print-exports",
        action="store_true",
        help="print shell exports instead of writing ~/.aws/credentials and ~/.aws/config",
    )
    login.add_argument("--timeout", type=float, help=argparse.SUPPRESS)

    process = sub.add_parser(
        "credential-process", help="print cached credentials for the AWS CLI's credential_process"
    )
    _profile_option(process, "profile whose cached login to print")
    _refresh_option(process, DEFAULT_REFRESH_BEFORE)

    console = sub.add_parser("console", help="open the console with cached credentials")
    _profile_option(console, "profile to open the console as")
    console.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")

    run = sub.add_parser(
        "exec",
        help="run a command with a profile's credentials in its environment",
        usage="sts-broker exec [--profile NAME] [--refresh-before SECONDS] -- COMMAND [ARG ...]",
    )
    _profile_option(run, "profile whose credentials the command gets")
    _refresh_option(run, EXEC_REFRESH_BEFORE)
    run.add_argument(
        "argv", nargs=argparse.REMAINDER, metavar="COMMAND", help="the command and its arguments"
    )

    env = sub.add_parser("env", help="print a profile's credentials as shell variables")
    _profile_option(env, "profile whose credentials to print")
    _shell_option(env, "variables")
    _refresh_option(env, EXEC_REFRESH_BEFORE)

    logout = sub.add_parser(
        "logout", help="revoke a login at the broker and delete its cached credentials"
    )
    which = logout.add_mutually_exclusive_group()
    which.add_argument(
        "--profile",
        metavar="NAME",
        default=DEFAULT_PROFILE,
        help="profile to log out (default: %(default)s)",
    )
    which.add_argument("--all", action="store_true", help="log out of every cached profile")

    sub.add_parser("list", help="show cached logins: profile, role, expiry, broker")

    serve = sub.add_parser(
        "serve-credentials",
        help="serve a profile's credentials to local workloads (ECS and IMDSv2 endpoints)",
        description="Serve a profile's refreshing credentials on 127.0.0.1 in the ECS "
        "container credentials format (AWS_CONTAINER_CREDENTIALS_FULL_URI with a random "
        "AWS_CONTAINER_AUTHORIZATION_TOKEN) and, with --imds, as EC2's IMDSv2. Prints the "
        "variables to export, then serves until interrupted.",
    )
    _profile_option(serve, "profile whose credentials to serve")
    serve.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    serve.add_argument(
        "--imds",
        action="store_true",
        help="also answer as IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT): any local process "
        "that can reach the port gets credentials, as on EC2",
    )
    _shell_option(serve, "printed variables")

    totp = sub.add_parser(
        "totp",
        help="print the current MFA code of a TOTP seed (default: the demo's alice)",
    )
    totp.add_argument(
        "secret",
        nargs="?",
        default=DEMO_TOTP_SECRET,
        metavar="BASE32_SEED",
        help="the device's seed (default: alice's in config/demo.yaml, a public demo value)",
    )
    totp.add_argument(
        "--next",
        action="store_true",
        help="wait for the next 30 s step, for a code not used yet (each works once)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the client subcommand ``args.command`` (one of :data:`COMMANDS`)."""
    if args.command == "login":
        from broker.client.login import run_login  # noqa: PLC0415 - see module doc

        return run_login(args)
    if args.command == "serve-credentials":
        from broker.client.credential_server import run_server  # noqa: PLC0415

        return run_server(args)
    handlers = {
        "configure": run_configure,
        "credential-process": run_credential_process,
        "console": run_console,
        "exec": run_exec,
        "env": run_env,
        "logout": run_logout,
        "list": run_list,
        "totp": run_totp,
    }
    return handlers[args.command](args)


# ---------------------------------------------------------------------- configure


def run_configure(args: argparse.Namespace) -> int:
    from broker.client.settings import (  # noqa: PLC0415 - see module doc
        Settings,
        SettingsError,
        check_provider,
        check_region,
        load_settings,
        save_settings,
    )

    try:
        current = load_settings()
        given: tuple[str | None, ...] = (args.broker, args.region, args.provider)
        if all(value is None for value in given):
            given = tuple(
                _ask(label, value)
                for label, value in (
                    ("Broker URL", current.broker),
                    ("Default region (empty: the broker's)", current.region),
                    ("Login provider (empty: choose each time)", current.provider),
                )
            )
        broker, region, provider = (
            value if value is not None else old
            for value, old in zip(
                given, (current.broker, current.region, current.provider), strict=True
            )
        )
        settings = Settings(
            broker=api.broker_url(broker) if broker else "",
            region=check_region(region) if region else "",
            provider=check_provider(provider) if provider else "",
        )
    except (SettingsError, ValueError) as exc:
        _say(f"sts-broker configure: {exc}")
        return EXIT_USAGE
    except EOFError:
        _say("sts-broker configure: no answer; nothing saved")
        return EXIT_USAGE
    _say(f"Saved to {save_settings(settings)}.")
    if settings.broker:
        try:
            api.check_broker(settings.broker)
        except api.BrokerError as exc:
            _say(f"warning: {exc} (saved anyway)")
    _say(
        "Next:\n  sts-broker login --all     # a profile per role you may use\n"
        "  sts-broker login           # one role, chosen in the browser"
    )
    return 0


def _ask(label: str, current: str) -> str:
    """One answer from stdin; an empty answer keeps ``current``."""
    shown = f" [{current}]" if current else ""
    print(f"{label}{shown}: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:
        raise EOFError
    return answer.strip() or current


# ---------------------------------------------------------------------- credentials


def _fresh(command: str, profile: str, refresh_before: float) -> CachedLogin | None:
    """The profile's login, refreshed when needed; None (after saying why) when impossible."""
    try:
        return CredentialCache().fresh(profile, refresh_before=refresh_before, now=time.time())
    except CacheError as exc:
        _say(f"sts-broker {command}: {exc}")
        return None


def run_credential_process(args: argparse.Namespace) -> int:
    login = _fresh("credential-process", args.profile, args.refresh_before)
    if login is None:
        return EXIT_FAILED
    print(json.dumps(login.process_output()))
    return 0


def run_console(args: argparse.Namespace) -> int:
    import webbrowser  # noqa: PLC0415 - see module doc

    login = _fresh("console", args.profile, DEFAULT_REFRESH_BEFORE)
    if login is None:
        return EXIT_FAILED
    # The broker's own credentials sign in at its /federation; an upstream role's are AWS's
    # and sign in at AWS's federation endpoint, into the real console (aws-vault's way).
    if login.upstream is not None:
        federation = login.upstream["FederationEndpoint"]
        destination, issuer = login.upstream["ConsoleUrl"], login.broker
    else:
        federation = f"{login.broker}/federation"
        destination, issuer = f"{login.broker}/console", "sts-broker-cli"
    try:
        signin = api.signin_token(federation, login.credentials)
    except api.BrokerError as exc:
        _say(f"sts-broker console: {exc}")
        return EXIT_FAILED
    url = api.console_login_url(federation, signin, destination=destination, issuer=issuer)
    print(url, flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    return 0


_REPLACED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
)
"""Variables ``exec`` removes: a profile or other keys beside ours would win or confuse."""


def credential_variables(login: CachedLogin, profile: str) -> list[tuple[str, str]]:
    """What ``exec`` sets and ``env`` prints (``STS_BROKER_PROFILE`` names the profile, as
    aws-vault's ``AWS_VAULT`` does, so a shell prompt can show it)."""
    from broker.client.snippets import credential_env  # noqa: PLC0415 - see module doc

    env = credential_env(login.credentials, region=login.region, sts_endpoint=login.sts_endpoint)
    return [*env, ("STS_BROKER_PROFILE", profile)]


def run_exec(args: argparse.Namespace) -> int:
    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        _say("sts-broker exec: give the command to run: sts-broker exec --profile P -- CMD ...")
        return EXIT_USAGE
    login = _fresh("exec", args.profile, args.refresh_before)
    if login is None:
        return EXIT_FAILED
    env = {k: v for k, v in os.environ.items() if k not in _REPLACED}
    env.update(credential_variables(login, args.profile))
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 - running the user's command is the job
    except FileNotFoundError:
        _say(f"sts-broker exec: command not found: {command[0]}")
        return 127
    except PermissionError:
        _say(f"sts-broker exec: cannot run {command[0]}: permission denied")
        return 126


def run_env(args: argparse.Namespace) -> int:
    from broker.client.snippets import shell_lines, shell_of  # noqa: PLC0415 - see module doc

    login = _fresh("env", args.profile, args.refresh_before)
    if login is None:
        return EXIT_FAILED
    print(shell_lines(credential_variables(login, args.profile), shell_of(args.shell)))
    _say(f"Credentials of {args.profile} expire {login.credentials['Expiration']}.")
    return 0


# ---------------------------------------------------------------------- logout, list


def run_logout(args: argparse.Namespace) -> int:
    from broker.client.profiles import forget_static_keys  # noqa: PLC0415 - see module doc

    cache = CredentialCache()
    try:
        profiles = cache.profiles() if args.all else [args.profile]
        cache.path(args.profile)
    except CacheError as exc:
        _say(f"sts-broker logout: {exc}")
        return EXIT_USAGE
    if not profiles:
        _say("sts-broker logout: no cached logins")
        return 0
    status = 0
    for profile in profiles:
        status = max(status, _logout(cache, profile))
        forget_static_keys(profile)
    return status


def _logout(cache: CredentialCache, profile: str) -> int:
    """Revoke one profile's refresh chain at its broker, then delete its cache."""
    try:
        login = cache.load(profile)
    except CacheError as exc:
        if not cache.path(profile).exists():
            _say(f"sts-broker logout: profile {profile!r} is not logged in")
            return EXIT_FAILED
        _say(f"warning: {exc}; deleting it without revoking")
        cache.delete(profile)
        return EXIT_FAILED
    status = 0
    said = "cache deleted"
    if login.refresh_token:
        try:
            api.revoke(login.broker, login.refresh_token)
            said = "the broker revoked its refresh token; cache deleted"
        except api.BrokerError as exc:
            _say(f"warning: could not revoke at the broker ({exc})")
            said = (
                f"cache deleted, but its refresh token stays valid until {login.refresh_expires_at}"
            )
            status = EXIT_FAILED
    cache.delete(profile)
    _say(
        f"Logged out of {profile}: {said}. Keys already handed out work until "
        f"{login.credentials['Expiration']}."
    )
    return status


def _left(expires: str, now: float) -> str:
    try:
        seconds = int(parse_time(expires) - now)
    except ValueError:
        return "?"
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    return f"in {hours} h {rest // 60:02d} min" if hours else f"in {rest // 60} min"


def run_list(args: argparse.Namespace) -> int:
    cache = CredentialCache()
    try:
        profiles = cache.profiles()
    except CacheError as exc:
        _say(f"sts-broker list: {exc}")
        return EXIT_FAILED
    if not profiles:
        _say("No cached logins. Run: sts-broker login")
        return 0
    now = time.time()
    rows = [("PROFILE", "ROLE", "EXPIRES", "REFRESHES UNTIL", "BROKER")]
    for profile in profiles:
        try:
            login = cache.load(profile)
        except CacheError as exc:
            _say(f"warning: {exc}")
            continue
        expires = login.credentials["Expiration"]
        until = login.refresh_expires_at
        rows.append(
            (
                profile,
                login.role_arn,
                f"{expires} ({_left(expires, now)})",
                f"{until} ({_left(until, now)})" if until and login.refresh_token else "no refresh",
                login.broker,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


# ---------------------------------------------------------------------- totp


def run_totp(args: argparse.Namespace) -> int:
    from broker.totp import STEP_SECONDS, decode_secret, totp_now  # noqa: PLC0415

    try:
        secret = decode_secret(args.secret)
    except ValueError:
        _say("sts-broker totp: the seed is not base32 (letters A-Z and digits 2-7)")
        return EXIT_USAGE
    now = time.time()
    if args.next:
        # Quiet: it runs inside $(...) on a command line the README shows with its output.
        time.sleep(STEP_SECONDS - now % STEP_SECONDS)
        now = time.time()
    print(totp_now(secret, now))
    return 0
