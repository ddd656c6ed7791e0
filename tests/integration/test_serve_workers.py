"""``sts-broker serve --workers N`` as a real process: what it refuses, and how it stops.

The graceful-shutdown test hammers a two-worker broker from a pool of client threads, each
request on a new connection, sends SIGTERM, and keeps hammering. What it holds the broker
to: every request a worker took in (each one it processed leaves an access line with its
request ID) reached its client as a 200 with that ID, none failed; a request whose body was
still arriving when the signal came is finished and answered; the clients that were
refused got no answer at all (the listener had closed); and the process exits 0. It runs
once per HTTP parser, h11 and httptools.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.conftest import DEV, HTTP_PARSERS, Key, _key, free_port

GCI_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
CLIENTS = 8
_ACCESS_LINE = re.compile(r"broker\.access \[\d+\]: ([0-9a-f-]{36}) GetCallerIdentity ")


def _config(folder: Path, *, state: str, alice: Key, keys: bool = True) -> Path:
    # One key hammers the workers here: the drain is under test, not the rate limits.
    config: dict[str, object] = {
        "public_url": "http://127.0.0.1:8080",
        "state": state,
        "throttling": {"enabled": False},
    }
    if keys:
        config["token_keys"] = [{"id": "w1", "secret": base64.b64encode(os.urandom(32)).decode()}]
    config |= {
        "accounts": {
            DEV: {"users": {"alice": {"access_keys": [{"id": alice.id, "secret": alice.secret}]}}}
        },
    }
    path = folder / "broker.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "broker", "serve", *args]


def test_memory_state_with_several_workers_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = _config(tmp_path, state="memory", alice=_key(0), keys=False)
    done = subprocess.run(
        _serve(str(path), "--workers", "3", "--port", str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert (
        f"{path}:2: state: 'memory' cannot be served with 3 workers: each would have its own "
        in (lines[0])
    )
    assert "a replay would pass" in lines[0] and "redis://host:port/db" in lines[0]
    assert lines[1].startswith(f"{path}:1: token_keys: must be set with 3 workers")
    assert len(lines) == 2


def _signed(url: str, alice: Key, seq: int) -> tuple[bytes, dict[str, str]]:
    request = AWSRequest(
        method="POST",
        url=f"{url}/",
        data=GCI_BODY,
        headers={"Content-Type": FORM, "X-Test-Seq": str(seq)},
    )
    SigV4Auth(Credentials(alice.id, alice.secret), "sts", "us-east-1").add_auth(request)
    prepared = request.prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, {k: str(v) for k, v in prepared.headers.items()}


@dataclass
class Tally:
    """What the clients saw: request IDs answered 200, other answers, transport errors."""

    answered: list[tuple[float, str]] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    no_answer: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _hammer(
    url: str, body: bytes, headers: dict[str, str], stop: threading.Event, tally: Tally
) -> None:
    # A new connection per request (no keep-alive): a refusal is then a refused connection,
    # never a kept-alive one closed under a request the server had not read yet.
    client = httpx.Client(timeout=15, limits=httpx.Limits(max_keepalive_connections=0))
    while not stop.is_set():
        try:
            answer = client.post(f"{url}/", content=body, headers=headers)
        except httpx.TransportError as exc:
            with tally.lock:
                tally.no_answer.append(type(exc).__name__)
            time.sleep(0.01)
            continue
        with tally.lock:
            if answer.status_code == 200 and "<GetCallerIdentityResult>" in answer.text:
                tally.answered.append((time.monotonic(), answer.headers["x-amzn-requestid"]))
            else:
                tally.wrong.append(f"{answer.status_code} {answer.text[:200]}")
    client.close()


@contextmanager
def _started(command: list[str], log: Path, url: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        # Both workers up: each logs its own start.
        while log.read_text().count("Application startup complete") < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"broker did not start: {log.read_text()}")
            time.sleep(0.05)
        assert httpx.get(f"{url}/healthz").status_code == 200
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("parser", HTTP_PARSERS)
def test_sigterm_lets_every_accepted_request_finish_under_load(tmp_path: Path, parser: str) -> None:
    alice = _key(0)
    path = _config(tmp_path, state=f"sqlite:///{tmp_path / 'state.db'}", alice=alice)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = _serve(str(path), "--workers", "2", "--http", parser, "--port", str(port))
    tally = Tally()
    stop = threading.Event()
    with _started(command, log, url) as proc:
        assert f"2 worker(s), HTTP parser {parser}" in log.read_text()
        requests = [_signed(url, alice, seq) for seq in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            for body, headers in requests:
                pool.submit(_hammer, url, body, headers, stop, tally)
            time.sleep(1.0)

            # One request in flight for sure: headers and half the body sent, then SIGTERM.
            slow_body, slow_headers = _signed(url, alice, CLIENTS)
            slow = socket.create_connection(("127.0.0.1", port), timeout=15)
            head = "".join(
                f"{k}: {v}\r\n"
                for k, v in slow_headers.items()
                if k.lower() not in ("content-length", "host")
            )
            slow.sendall(
                f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                f"Content-Length: {len(slow_body)}\r\nConnection: close\r\n\r\n".encode()
                + slow_body[:10]
            )
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.5)
            slow.sendall(slow_body[10:])
            reply = b""
            while chunk := slow.recv(65536):
                reply += chunk
            slow.close()
            time.sleep(0.5)
            stop.set()
        assert proc.wait(timeout=40) == 0, log.read_text()

    output = log.read_text()
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert b"<GetCallerIdentityResult>" in reply
    slow_id = re.search(rb"x-amzn-requestid: ([0-9a-f-]{36})", reply, re.IGNORECASE)
    assert slow_id is not None
    processed = set(_ACCESS_LINE.findall(output))
    answered = {rid for _, rid in tally.answered} | {slow_id.group(1).decode()}
    assert tally.wrong == []
    # Every request a worker processed reached its client as a 200, and nothing else did.
    assert processed == answered, (len(processed), len(answered))
    assert len(answered) > 50
    # The rest were refused without any answer: the listener closed, or a connection still
    # in the kernel's backlog was reset.
    refusals = {"ConnectError", "ConnectTimeout", "RemoteProtocolError", "ReadError", "WriteError"}
    assert set(tally.no_answer) <= refusals
    # The drain was quick: nothing was answered long after the signal.
    assert all(at < signalled + 5 for at, _ in tally.answered)
    assert "Waiting for application shutdown" in output or "Shutting down" in output
