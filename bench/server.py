"""One benchmark server process: the broker from a config file, or the bare baseline app.

Run as ``python bench/server.py {broker,baseline,bare-form} [--config PATH] [--body-file F]
[--token-param NAME] [--http auto|h11|httptools] [--loop auto|asyncio|uvloop]`` (``auto``, as
``sts-broker serve``: httptools and uvloop when installed, which they are by default).
The process binds a loopback socket on port 0 itself (no port race), prints ``PORT <n>`` on
stdout, then serves with one uvicorn worker until it is terminated. It lives in its own
process so the load generator's CPU time is never counted as the server's, and so
``/proc/<pid>/stat`` gives the server's CPU time alone.

The baseline is deliberately the smallest Starlette app that does what every STS answer
needs at the HTTP level (read the form body, answer an XML document of the same size with
the same headers), so ``broker / baseline`` isolates what the broker itself costs.
``bare-form`` is the web identity and SAML workloads' baseline: it also *parses* the form
body (the token is ~0.6 KB of it, the SAML response ~9 KB) and answers a copy of a real
AssumeRoleWithWebIdentity (or AssumeRoleWithSAML) answer.

The broker is served with the connection bounds ``sts-broker serve`` applies (the config's
``server:`` section through :func:`broker.web.connection_limits.uvicorn_options`), so its
rows include what they cost; the baselines run on plain uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/server.py` puts bench/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

from broker.app import create_app  # noqa: E402
from broker.config import load_config  # noqa: E402
from broker.sts.model import StsModel  # noqa: E402
from broker.web.connection_limits import uvicorn_options  # noqa: E402

ALICE = {
    "UserId": "AIDAXXXXXXXXXXXXXXXXX",
    "Account": "111111111111",
    "Arn": "arn:aws:iam::111111111111:user/alice",
}
"""Shaped like alice's GetCallerIdentity answer; ``run.py`` checks the sizes really match."""


def baseline_body(user_id: str = ALICE["UserId"]) -> bytes:
    """A GetCallerIdentity document rendered once, byte-for-byte the size the broker sends.

    Rendered with the broker's own renderer and a UUID-shaped request ID so the size matches
    without hand-copying XML; the baseline never renders per request.
    """
    result = dict(ALICE, UserId=user_id)
    return StsModel.load().render_result("GetCallerIdentity", result, str(uuid.UUID(int=0)))


def baseline_app(body: bytes) -> Starlette:
    """Read the body, answer fixed XML: the HTTP floor every broker request also pays."""
    request_id = str(uuid.UUID(int=0))

    async def sts(request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse("baseline\n")
        await request.body()
        return Response(body, media_type="text/xml", headers={"x-amzn-RequestId": request_id})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", sts, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def bare_form_app(body: bytes, token_param: str = "WebIdentityToken") -> Starlette:
    """Read and parse the form body, answer a fixed XML body: the federation floor.

    ``parse_qsl`` rather than ``await request.form()``: Starlette's form parser needs
    python-multipart, which is not installed (the broker does not use it either), and
    ``parse_qsl`` is what a bare handler would reach for. Same headers as the broker.
    ``token_param`` must be in the form (``WebIdentityToken``, or ``SAMLAssertion`` for
    the SAML workload's floor).
    """
    request_id = str(uuid.UUID(int=0))

    async def sts(request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse("bare-form\n")
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if token_param not in params:
            return PlainTextResponse(f"no {token_param}\n", status_code=400)
        return Response(body, media_type="text/xml", headers={"x-amzn-RequestId": request_id})

    return Starlette(routes=[Route("/", sts, methods=["GET", "POST"])])


def broker_app(config_path: Path) -> Starlette:
    """The real broker, built exactly as ``sts-broker serve`` builds it."""
    return create_app(load_config(config_path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["broker", "baseline", "bare-form"])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "demo.yaml")
    parser.add_argument("--user-id", default=ALICE["UserId"], help="baseline: UserId to render")
    parser.add_argument("--body-file", type=Path, help="bare-form: the fixed answer to send")
    parser.add_argument(
        "--token-param", default="WebIdentityToken", help="bare-form: the parameter required"
    )
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args(argv)

    # WARNING, not the CLI's default INFO: the access line per request is a logging cost,
    # not a broker cost, and would dominate the comparison (README says so).
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("broker").setLevel(logging.WARNING)

    options: dict[str, object] = {"http": args.http}
    if args.kind == "broker":
        app = broker_app(args.config)
        options = uvicorn_options(load_config(args.config).server, http=args.http)
    elif args.kind == "bare-form":
        if args.body_file is None:
            parser.error("bare-form needs --body-file")
        app = bare_form_app(args.body_file.read_bytes(), args.token_param)
    else:
        app = baseline_app(baseline_body(args.user_id))
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is
    # IPPROTO_TCP, and with proto 0 every keep-alive answer written in two parts stalls ~40 ms
    # on the client's delayed ACK. `uvicorn.run(host=, port=)` gets this right by itself.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        workers=1,
        backlog=1024,
        loop=args.loop,
        **options,  # type: ignore[arg-type]
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
