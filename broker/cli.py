"""The ``sts-broker`` command: serve, check-config, config-schema, simulate, keygen, and the
client commands (configure, login, credential-process, console, exec, env, logout, list,
serve-credentials, totp: :mod:`broker.client.commands`).

Config mistakes are printed one per line as ``file:line: key.path: reason`` and exit with
status 2 before anything listens, so a bad deploy fails loudly at start-up.

The server's modules are imported inside the commands that need them: the AWS CLI runs
``credential-process`` on every call, and it should not pay for loading the broker.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from broker import __version__
from broker.client import commands as client_commands

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

    sub.add_parser("config-schema", help="print the config file's JSON Schema")
    sub.add_parser("keygen", help="print a new random token key (base64, 32 bytes)")
    client_commands.add_commands(sub)
    return parser


def _check(path: str) -> int:
    """Load and fully validate (IAM grammar included); list every problem."""
    from broker.app import load_broker_config  # noqa: PLC0415 - see module doc
    from broker.config import ConfigError  # noqa: PLC0415
    from broker.directory import Directory  # noqa: PLC0415

    try:
        Directory.build(load_broker_config(path))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: OK")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - see module doc

    from broker.app import create_app, load_broker_config  # noqa: PLC0415
    from broker.config import ConfigError  # noqa: PLC0415
    from broker.loopback import is_loopback_host  # noqa: PLC0415

    path = args.config_file or args.config
    if not path:
        print("sts-broker serve: give a config file (or set STS_BROKER_CONFIG)", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_broker_config(path)
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
        logging.getLogger("broker").warning(
            "serving the demo IdPs on %s: they sign in whoever clicks; publish this port on "
            "loopback only (docker run -p 127.0.0.1:%d:%d ...)",
            host,
            port,
            port,
        )
    # Bound before the app is built: a busy port is said at once, before its warnings.
    sock = _bind(host, port, demo=bool(demo_idps), config_path=path)
    if sock is None:
        return EXIT_FAILED
    try:
        app = create_app(config)
    except ConfigError as exc:
        sock.close()
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=args.log_level, access_log=False)
    )
    server.run(sockets=[sock])
    return 0


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return _check(args.config)
    if args.command == "simulate":
        return _simulate(args)
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
