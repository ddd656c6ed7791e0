"""The ``sts-broker`` command: serve, check-config, config-schema, simulate, explain, keygen,
revoke-sessions, and the client commands (configure, login, credential-process, console,
exec, env, logout, list, serve-credentials, totp: :mod:`broker.client.commands`).

Config mistakes are printed one per line as ``file:line: key.path: reason`` and exit with
status 2 before anything listens, so a bad deploy fails loudly at start-up.

The server's modules are imported inside the commands that need them: the AWS CLI runs
``credential-process`` on every call, and it should not pay for loading the broker.
"""

from __future__ import annotations

import argparse
import base64
import copy
import errno
import importlib.util
import json
import logging
import logging.config
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from broker import __version__
from broker.client import commands as client_commands

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from broker.config import BrokerConfig

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sts-broker",
        description="Federation identity broker with an AWS STS-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"sts-broker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the broker")
    serve.add_argument("config_file", nargs="?", metavar="CONFIG", help="config file")
    serve.add_argument(
        "--config",
        "-c",
        default=os.environ.get("STS_BROKER_CONFIG"),
        help="config file, as an option (default: $STS_BROKER_CONFIG)",
    )
    serve.add_argument("--host", help="listen address (default: public_url's host)")
    serve.add_argument("--port", type=int, help="listen port (default: public_url's port)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="least severe messages logged (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        help="worker processes, under uvicorn's process manager (default 1); more than one "
        "needs shared state (sqlite or redis) and configured keys",
    )
    serve.add_argument(
        "--http",
        default="auto",
        choices=["auto", "h11", "httptools"],
        help="HTTP/1.1 parser (default auto: httptools when installed, else h11)",
    )
    serve.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop (default auto: uvloop when installed, else asyncio)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take to finish (default 30)",
    )

    check = sub.add_parser(
        "check-config", help="validate a config file and exit (status 2 on mistakes)"
    )
    check.add_argument("config", metavar="CONFIG", help="the config file to check")

    sim = sub.add_parser(
        "simulate", help="decide whether a principal may perform an action, and say why"
    )
    sim.add_argument("--config", "-c", required=True, help="config file")
    sim.add_argument("--principal", required=True, help="user or role ARN from the config")
    sim.add_argument("--action", required=True, help="e.g. s3:PutObject or sts:AssumeRole")
    sim.add_argument("--resource", required=True, help="resource ARN")
    sim.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="condition key (repeat a key for several values)",
    )
    sim.add_argument("--json", action="store_true", help="print the result as JSON")

    explain = sub.add_parser(
        "explain",
        help="say which roles a token or SAML response would get, and why each other role is "
        "refused (exit 0 when at least one)",
    )
    explain.add_argument("--config", "-c", required=True, help="config file")
    proof = explain.add_mutually_exclusive_group(required=True)
    proof.add_argument("--token", metavar="FILE", help="an OIDC ID token (- for stdin)")
    proof.add_argument(
        "--saml-response", metavar="FILE", help="a base64 SAML response (- for stdin)"
    )
    explain.add_argument("--pool", metavar="ID", help="explain this identity pool's mapping")
    explain.add_argument(
        "--role", metavar="ARN", help="only this role (with --pool: as CustomRoleArn)"
    )
    explain.add_argument(
        "--no-verify",
        action="store_true",
        help="read an OIDC token without checking its signature or times (say so)",
    )
    explain.add_argument(
        "--at", metavar="TIME", help="evaluate as of this time (epoch seconds or ISO 8601)"
    )
    revoke = sub.add_parser(
        "revoke-sessions",
        help="deny every active session of a role issued up to now (AWS's revoke sessions)",
    )
    revoke.add_argument("--config", "-c", required=True, help="config file")
    revoke.add_argument("--role", required=True, metavar="ARN", help="role ARN from the config")

    sub.add_parser("config-schema", help="print the config file's JSON Schema")
    sub.add_parser("keygen", help="print a new random token key (base64, 32 bytes)")
    client_commands.add_commands(sub)
    return parser


def _at_least_one(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1 (got {text!r})")
    return int(text)


def _log_config(level: str, log_format: str) -> dict[str, Any]:
    """uvicorn's logging set-up plus the broker's own loggers, for every worker process.

    uvicorn applies this in each worker it starts, so the broker's warnings and access lines
    come out of every worker alike, in one format: text, or (``log_format: json``) one JSON
    object per line for uvicorn's own lines too.
    """
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - see module doc

    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"]["broker"] = {"()": "broker.observability.logs.JsonFormatter"}
        for name in ("uvicorn", "uvicorn.access"):
            config["loggers"][name]["handlers"] = ["broker"]
    else:
        config["formatters"]["broker"] = {
            "format": "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
        }
    config["handlers"]["broker"] = {
        "class": "logging.StreamHandler",
        "formatter": "broker",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["broker"] = {"handlers": ["broker"], "level": level, "propagate": False}
    # Libraries' own warnings (httpx, authlib, ...) in the same format, not Python's bare
    # last-resort line.
    config["root"] = {"handlers": ["broker"], "level": "WARNING"}
    return config


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check(path: str) -> int:
    """Load and fully validate (IAM grammar included); list every problem, then the
    warnings (identity-pool rules that never match, are shadowed, or name a role no trust
    policy admits), which do not stop the broker."""
    from broker.app import load_broker_config  # noqa: PLC0415 - see module doc
    from broker.config import ConfigError, format_key_path  # noqa: PLC0415
    from broker.directory import Directory  # noqa: PLC0415
    from broker.pools.lint import lint_pools  # noqa: PLC0415

    try:
        config = load_broker_config(path)
        directory = Directory.build(config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    warnings = lint_pools(config, directory)
    for key_path, message in warnings:
        file, line = config.locate(key_path)
        where = file if line is None else f"{file}:{line}"
        print(f"{where}: {format_key_path(key_path)}: warning: {message}")
    noun = "warning" if len(warnings) == 1 else "warnings"
    print(f"{path}: OK" + (f" ({len(warnings)} {noun})" if warnings else ""))
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Check everything, then hand the app (or, for several workers, its factory) to uvicorn.

    uvicorn's own signal handling gives the graceful shutdown: on SIGTERM or SIGINT it stops
    accepting, lets requests in flight finish (``--shutdown-timeout`` at most) and exits; with
    several workers its process manager passes the signal on to each worker and waits.
    """
    import uvicorn  # noqa: PLC0415 - see module doc

    from broker.app import CONFIG_ENV, create_app, load_broker_config  # noqa: PLC0415
    from broker.config import ConfigError, check_processes, listen_address  # noqa: PLC0415
    from broker.directory import Directory  # noqa: PLC0415
    from broker.loopback import is_loopback_host  # noqa: PLC0415
    from broker.web.connection_limits import uvicorn_options  # noqa: PLC0415

    path = args.config_file or args.config
    if not path:
        print("sts-broker serve: give a config file (or set STS_BROKER_CONFIG)", file=sys.stderr)
        return EXIT_CONFIG
    logging.config.dictConfig(_log_config(args.log_level.upper(), "text"))
    log = logging.getLogger("broker")
    try:
        config = load_broker_config(path)
        check_processes(config, args.workers)
        log_config = _log_config(args.log_level.upper(), config.log_format)
        logging.config.dictConfig(log_config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    url = urlsplit(config.public_url)
    host = args.host or url.hostname or "127.0.0.1"
    public_port = url.port or (443 if url.scheme == "https" else 80)
    port = args.port or public_port
    demo_idps = config.demo.saml_idp or config.demo.oidc_provider
    if demo_idps and port != public_port:
        # The broker fetches the demo IdPs' metadata and keys from public_url: on another
        # port every sign-in would fail with a 502, so refuse now and say how to fix it.
        print(
            f"sts-broker serve: the demo IdPs live at public_url ({config.public_url}), but "
            f"--port is {port}; set STS_BROKER_PUBLIC_URL=http://127.0.0.1:{port} instead",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if demo_idps and not is_loopback_host(host):
        log.warning(
            "serving the demo IdPs on %s: they sign in whoever clicks; publish this port on "
            "loopback only (docker run -p 127.0.0.1:%d:%d ...)",
            host,
            port,
            port,
        )
    parser = args.http if args.http != "auto" else "httptools" if _installed("httptools") else "h11"
    loop = args.loop if args.loop != "auto" else "uvloop" if _installed("uvloop") else "asyncio"
    # Bound before the app is built: a busy port is said at once, before its warnings.
    if config.admin_listen is not None and listen_address(config.admin_listen)[1] == port:
        print(
            f"sts-broker serve: admin_listen {config.admin_listen} uses the public port "
            f"{port}; give the admin listener a port of its own",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    sockets = _listeners(config, host, port, demo=bool(demo_idps), config_path=path)
    if sockets is None:
        return EXIT_FAILED
    _prepare_metrics(workers=args.workers)
    try:
        # One worker runs in this process; several build their own apps, so here only the
        # checks that building one makes (the IAM grammar) run before any of them starts.
        if args.workers == 1:
            target: Starlette | str = create_app(config)
        else:
            Directory.build(config)
            target = "broker.app:app_from_environment"
    except ConfigError as exc:
        for sock in sockets:
            sock.close()
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    log.info(
        "sts-broker %s: %d worker(s), HTTP parser %s, event loop %s, state %s",
        __version__,
        args.workers,
        parser,
        loop,
        config.state.partition("://")[0] or config.state,
    )
    if args.workers > 1:
        os.environ[CONFIG_ENV] = str(config.source)  # what each worker's factory reads
    server_config = uvicorn.Config(
        target,
        factory=isinstance(target, str),
        host=host,
        port=port,
        workers=args.workers,
        loop=loop,
        log_level=args.log_level,
        log_config=log_config,
        access_log=False,
        **uvicorn_options(config.server, http=parser),
        # The broker decides whom to believe from trusted_proxies (broker/proxies.py); uvicorn
        # would otherwise believe X-Forwarded-For from 127.0.0.1 on its own.
        proxy_headers=False,
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    if args.workers == 1:
        uvicorn.Server(server_config).run(sockets=sockets)
    else:
        from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

        Multiprocess(server_config, sockets=sockets).run()
    return 0


def _prepare_metrics(*, workers: int) -> None:
    """Before any worker starts: the shared metrics directory when there are several
    workers or ``PROMETHEUS_MULTIPROC_DIR`` is set (:func:`prepare_multiprocess_dir`).
    Each worker's app forgets its live gauges as it stops (its lifespan calls
    :func:`worker_exit`); a supervisor that sees a worker die should call it too."""
    from broker.observability import prepare_multiprocess_dir  # noqa: PLC0415 - see module doc

    prepare_multiprocess_dir(workers)


def _listeners(
    config: BrokerConfig, host: str, port: int, *, demo: bool, config_path: str
) -> list[socket.socket] | None:
    """The sockets to serve on, bound now: the public address, and ``admin_listen``'s.

    One uvicorn server (every worker) accepts on all of them; the app tells the admin
    socket's requests apart by the port they arrived on (``broker.web.admin``), which is
    why the two ports must differ (``serve`` checks). None (after saying why) when one
    cannot be bound.
    """
    from broker.config import listen_address  # noqa: PLC0415 - see module doc

    addresses = [(host, port)]
    if config.admin_listen is not None:
        addresses.append(listen_address(config.admin_listen))
    sockets: list[socket.socket] = []
    for address_host, address_port in addresses:
        sock = _bind(address_host, address_port, demo=demo, config_path=config_path)
        if sock is None:
            for bound in sockets:
                bound.close()
            return None
        sockets.append(sock)
    return sockets


def _bind(host: str, port: int, *, demo: bool, config_path: str) -> socket.socket | None:
    """The listening socket, bound before uvicorn starts, so a busy port is said in words:
    which port, and what to do (uvicorn alone says ``[Errno 98]``)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        other = port + 1 if port < 65535 else 8080
        how = (
            f"STS_BROKER_PUBLIC_URL=http://127.0.0.1:{other} sts-broker serve {config_path}"
            if demo
            else f"sts-broker serve {config_path} --port {other}"
        )
        if exc.errno == errno.EADDRINUSE:
            why = (
                f"port {port} on {host} is already in use (another sts-broker, or another "
                f"program: ss -ltnp 'sport = :{port}' shows which). Stop it, or serve on "
                f"another port: {how}"
            )
        elif exc.errno == errno.EACCES:
            why = f"not allowed to listen on port {port} on {host} (below 1024 needs root): {how}"
        else:
            why = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        print(f"sts-broker serve: {why}", file=sys.stderr)
        return None
    return sock


def _simulate(args: argparse.Namespace) -> int:
    """Exit 0 when allowed, 1 when denied, 2 for config or argument mistakes."""
    from broker.config import ConfigError, load_config  # noqa: PLC0415 - see module doc
    from broker.directory import Directory  # noqa: PLC0415
    from broker.errors import StsError  # noqa: PLC0415
    from broker.sts.simulate import parse_context, render, simulate  # noqa: PLC0415

    try:
        config = load_config(args.config)
        directory = Directory.build(config)
        result = simulate(
            directory,
            principal_arn=args.principal,
            action=args.action,
            resource=args.resource,
            context=parse_context(args.context),
            now=time.time(),
            region=config.region,
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except StsError as exc:
        print(f"sts-broker simulate: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(
            json.dumps(
                {
                    "allowed": result.allowed,
                    "principal": result.principal,
                    "action": result.action,
                    "resource": result.resource,
                    "reason": result.reason,
                    "matched": [
                        {"policy": m.policy, "index": m.index, "sid": m.sid, "effect": m.effect}
                        for m in result.matched
                    ],
                },
                indent=2,
            )
        )
    else:
        print(render(result))
    return 0 if result.allowed else 1


def _explain(args: argparse.Namespace) -> int:
    """Exit 0 when the identity would get at least one role, 1 when none, 2 for mistakes."""
    import asyncio  # noqa: PLC0415 - see module doc
    from datetime import datetime  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from broker.app import load_broker_config  # noqa: PLC0415
    from broker.clock import FrozenClock, SystemClock  # noqa: PLC0415
    from broker.config import ConfigError  # noqa: PLC0415
    from broker.pools.explain import explain, render  # noqa: PLC0415

    source = args.token or args.saml_response
    if args.no_verify and args.saml_response:
        print(
            "sts-broker explain: --no-verify reads OIDC tokens only; a SAML response is "
            "verified against its provider's metadata (use --at for an old one)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"sts-broker explain: cannot read {source} ({exc.strerror})", file=sys.stderr)
        return EXIT_CONFIG
    # Ephemeral issuer keys are what explain builds (it signs nothing): not worth a warning.
    logging.getLogger("broker.issuer").setLevel(logging.ERROR)
    clock: FrozenClock | SystemClock = SystemClock()
    if args.at:
        try:
            when = (
                float(args.at)
                if args.at.replace(".", "", 1).isdigit()
                else (datetime.fromisoformat(args.at).timestamp())
            )
        except ValueError:
            print(f"sts-broker explain: --at {args.at!r} is not a time", file=sys.stderr)
            return EXIT_CONFIG
        clock = FrozenClock(when)
    try:
        config = load_broker_config(args.config)
        result = asyncio.run(
            explain(
                config,
                text.strip(),
                saml=args.saml_response is not None,
                clock=clock,
                pool_id=args.pool,
                role_arn=args.role,
                verify=not args.no_verify,
            )
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    print(render(result))
    return 0 if result.granted else 1


def _revoke_sessions(args: argparse.Namespace) -> int:
    """Write the revocation to the shared state store every node reads; exit 2 if the
    config's state is not shared (memory) or the role is not in it."""
    import asyncio  # noqa: PLC0415 - see module doc

    from broker.clock import SystemClock, iso8601  # noqa: PLC0415
    from broker.config import ConfigError, load_config  # noqa: PLC0415
    from broker.directory import Directory  # noqa: PLC0415
    from broker.identity import SessionRevocations  # noqa: PLC0415
    from broker.store import open_configured_store  # noqa: PLC0415

    try:
        config = load_config(args.config)
        directory = Directory.build(config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    if directory.role(args.role) is None:
        print(f"sts-broker revoke-sessions: no role {args.role} in {args.config}", file=sys.stderr)
        return EXIT_CONFIG
    if config.state == "memory":
        print(
            "sts-broker revoke-sessions: this config's state is memory: each broker process "
            "keeps its own, so no running broker would see a revocation written from here. "
            "Revoke through the running broker's admin API instead (POST "
            "/admin/revoke-sessions, signed by a caller allowed sts-broker:RevokeSessions), "
            "or give the brokers a shared state (sqlite:///path or redis://host:port/db).",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    clock = SystemClock()

    async def revoke() -> int:
        store = open_configured_store(config, clock)
        try:
            revocations = SessionRevocations(store, clock)
            return (await revocations.revoke(args.role)).before
        finally:
            await store.close()

    before = asyncio.run(revoke())
    print(
        f"Sessions of {args.role} issued before {iso8601(before + 1)} are denied by every "
        "broker sharing this state, within its revocation.cache_seconds "
        f"({config.revocation.cache_seconds} s in this config)."
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return _check(args.config)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "explain":
        return _explain(args)
    if args.command == "revoke-sessions":
        return _revoke_sessions(args)
    if args.command == "config-schema":
        from broker.config import config_json_schema  # noqa: PLC0415 - see module doc

        print(json.dumps(config_json_schema(), indent=2))
        return 0
    if args.command in client_commands.COMMANDS:
        return client_commands.run(args)
    if args.command == "keygen":
        print(base64.b64encode(os.urandom(32)).decode())
        return 0
    raise AssertionError(args.command)  # argparse rejects unknown commands first
