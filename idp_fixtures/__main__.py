"""``python -m idp_fixtures oidc|saml --port N --users users.yaml``: standalone fixture servers.

For CI jobs and manual testing outside pytest. ``oidc``: every ``--issuer`` name becomes
an issuer at ``{origin}/{name}`` sharing the users and clients of ``--users``; it prints
the issuer URLs (one per line, flushed). ``saml``: one SAML IdP at ``{origin}/saml/...``
with the users and SPs of a SAML ``--users`` file (plus ``--sp ENTITY_ID ACS_URL``); it
prints the metadata URL (also the entity ID). Both serve until interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from idp_fixtures.oidc.directory import load_directory
from idp_fixtures.oidc.server import OidcServer, bind_socket, is_loopback, origin
from idp_fixtures.saml.directory import ServiceProvider, load_saml_directory
from idp_fixtures.saml.presets import SHAPES
from idp_fixtures.saml.server import SamlServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m idp_fixtures")
    commands = parser.add_subparsers(dest="command", required=True)
    oidc = commands.add_parser("oidc", help="run fixture OIDC issuers")
    oidc.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    oidc.add_argument("--users", help="users.yaml with users and clients")
    oidc.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    oidc.add_argument(
        "--issuer",
        action="append",
        dest="issuers",
        metavar="NAME",
        help="issuer name, repeatable (default: default)",
    )
    oidc.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    oidc.add_argument("--auto-login", metavar="USER", help="sign this user in without a page")
    saml = commands.add_parser("saml", help="run a fixture SAML IdP")
    saml.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    saml.add_argument("--users", help="SAML users.yaml with users and sps")
    saml.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    saml.add_argument(
        "--sp",
        nargs=2,
        action="append",
        metavar=("ENTITY_ID", "ACS_URL"),
        help="register a service provider, repeatable",
    )
    saml.add_argument("--preset", choices=sorted(SHAPES), default="generic")
    saml.add_argument("--sign", choices=["assertion", "response", "both"])
    saml.add_argument("--auto-login", metavar="USER", help="sign this user in without a page")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "saml":
        return _saml(args)
    try:
        directory = load_directory(args.users) if args.users else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            "warning: binding a non-loopback address; this provider signs anyone in",
            file=sys.stderr,
        )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    server = OidcServer(origin(args.host, sock.getsockname()[1]))
    # An empty section in users.yaml falls back to the built-in users / test client.
    users = directory.users if directory and directory.users else None
    clients = directory.clients if directory and directory.clients else None
    for name in args.issuers or ["default"]:
        try:
            provider = server.add_issuer(
                name,
                users=users,
                clients=clients,
                alg=args.alg,
                auto_login=args.auto_login,
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sock.close()
            return 2
        print(provider.issuer, flush=True)
    config = uvicorn.Config(server.app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _saml(args: argparse.Namespace) -> int:
    try:
        directory = load_saml_directory(args.users) if args.users else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sps = list(directory.sps) if directory else []
    try:
        sps += [ServiceProvider(entity_id, (acs,)) for entity_id, acs in args.sp or []]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            "warning: binding a non-loopback address; this IdP signs anyone in",
            file=sys.stderr,
        )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    # An empty section in users.yaml falls back to the built-in users / AWS's SP.
    server = SamlServer(
        origin(args.host, sock.getsockname()[1]),
        users=directory.users if directory and directory.users else None,
        sps=sps or None,
        sign=args.sign,
        shape=SHAPES[args.preset],
        auto_login=args.auto_login,
    )
    print(server.metadata_url, flush=True)
    config = uvicorn.Config(server.app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
