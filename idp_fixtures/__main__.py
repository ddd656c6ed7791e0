"""``python -m idp_fixtures oidc --port N --users users.yaml``: a standalone fixture server.

For CI jobs and manual testing outside pytest: every ``--issuer`` name becomes an issuer
at ``{origin}/{name}`` sharing the users and clients of ``--users``. It prints the issuer
URLs (one per line, flushed) so a script can read them, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from idp_fixtures.oidc.directory import load_directory
from idp_fixtures.oidc.server import OidcServer, bind_socket, is_loopback, origin


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
