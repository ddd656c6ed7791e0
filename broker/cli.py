"""The ``sts-broker`` command: serve, check-config, config-schema, keygen, revoke-sessions,
and the client commands login, credential-process and console (:mod:`broker.client.login`).

Config mistakes are printed one per line as ``file:line: key.path: reason`` and exit with
status 2 before anything listens, so a bad deploy fails loudly at start-up.

The server's modules are imported inside the commands that need them: the AWS CLI runs
``credential-process`` on every call, and it should not pay for loading the broker.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from broker import __version__
from broker.client import login as client_login

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
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config")

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

    revoke = sub.add_parser(
        "revoke-sessions",
        help="deny every active session of a role issued up to now (AWS's revoke sessions)",
    )
    revoke.add_argument("--config", "-c", required=True, help="config file")
    revoke.add_argument("--role", required=True, metavar="ARN", help="role ARN from the config")

    sub.add_parser("config-schema", help="print the config file's JSON Schema")
    sub.add_parser("keygen", help="print a new random token key (base64, 32 bytes)")
    client_login.add_commands(sub)
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
    from broker.web.connection_limits import uvicorn_options  # noqa: PLC0415

    path = args.config_file or args.config
    if not path:
        print("sts-broker serve: give a config file (or set STS_BROKER_CONFIG)", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_broker_config(path)
        app = create_app(config)
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
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        access_log=False,
        **uvicorn_options(config.server),
    )
    return 0


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


def _revoke_sessions(args: argparse.Namespace) -> int:
    """Write the revocation to the shared state store every node reads; exit 2 if the
    config's state is not shared (memory) or the role is not in it."""
    import asyncio  # noqa: PLC0415 - see module doc

    from broker.clock import SystemClock, iso8601  # noqa: PLC0415
    from broker.config import ConfigError, load_config  # noqa: PLC0415
    from broker.directory import Directory  # noqa: PLC0415
    from broker.identity import SessionRevocations  # noqa: PLC0415
    from broker.store import open_store  # noqa: PLC0415

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
        store = open_store(config.state, clock)
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
    if args.command == "revoke-sessions":
        return _revoke_sessions(args)
    if args.command == "config-schema":
        from broker.config import config_json_schema  # noqa: PLC0415 - see module doc

        print(json.dumps(config_json_schema(), indent=2))
        return 0
    if args.command == "login":
        return client_login.run_login(args)
    if args.command == "credential-process":
        return client_login.run_credential_process(args)
    if args.command == "console":
        return client_login.run_console(args)
    if args.command == "keygen":
        print(base64.b64encode(os.urandom(32)).decode())
        return 0
    raise AssertionError(args.command)  # argparse rejects unknown commands first
