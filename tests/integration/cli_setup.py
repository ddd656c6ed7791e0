"""A live broker with a SAML login provider and a live fixture IdP, plus the pieces the CLI
hand-off tests share: the browser steps (httpx, through the real IdP), the CLI as a real
subprocess with its own HOME and AWS files, and ``$BROWSER`` captured to a file."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from broker.app import create_app
from broker.config import load_config
from broker.pkce import challenge_of, new_verifier
from idp_fixtures import SamlUser
from idp_fixtures.saml import SamlServer, serve_saml_in_thread
from tests.integration.conftest import DEV, OffsetClock, bind_loopback, start_server, stop_server
from tests.integration.test_saml import _auto_post_form, _sp_certificate

CORP = f"arn:aws:iam::{DEV}:saml-provider/Corp"
READER = f"arn:aws:iam::{DEV}:role/CliReader"
OPS = f"arn:aws:iam::{DEV}:role/CliOps"
NOT_GRANTED = f"arn:aws:iam::{DEV}:role/CliNotGranted"
SESSION_NAME = "alice@example.com"
READER_SESSION = f"arn:aws:sts::{DEV}:assumed-role/CliReader/{SESSION_NAME}"
ROOT = Path(__file__).resolve().parents[2]


def _trust(acs: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": CORP},
                "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession"],
                "Condition": {"StringEquals": {"saml:aud": acs}},
            }
        ],
    }


@dataclass
class CliBroker:
    url: str
    idp: SamlServer
    clock: OffsetClock

    def browser(self) -> httpx.Client:
        """A fresh browser: its own cookie jar, no session."""
        return httpx.Client(base_url=self.url, timeout=30)

    def sign_in_from(self, client: httpx.Client, url: str) -> httpx.Response:
        """Open a ``/cli/...`` URL in a browser with no session: the broker sends it to the
        sign-in (the provider's, or the sign-in page, whose Corp SSO button is clicked);
        the fixture IdP signs alice in; the ACS sends it back. Returns the page the
        browser lands on (the confirmation page, for a valid request)."""
        first = client.get(url)
        assert first.status_code == 303, first.text
        location = first.headers["location"]
        if location.startswith("/?return_to="):
            signin = client.get(location)
            link = re.search(r'href="(/login/corp\?return_to=[^"]+)"', signin.text)
            assert link is not None, signin.text
            location = html.unescape(link.group(1))
        assert location.startswith("/login/corp?return_to="), location
        button = client.get(location)
        assert button.status_code == 303, button.text
        start = client.get(button.headers["location"])
        assert start.status_code == 302, start.text
        at_idp = client.get(start.headers["location"], follow_redirects=True)
        form = _auto_post_form(at_idp.text)
        done = client.post(form.pop("action"), data=form)
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith("/cli/"), done.headers["location"]
        return client.get(done.headers["location"])

    @contextmanager
    def signed_in(self) -> Iterator[httpx.Client]:
        """A browser with a live session (signed in through the IdP, landed on /roles)."""
        with self.browser() as client:
            button = client.get("/login/corp")
            start = client.get(button.headers["location"])
            at_idp = client.get(start.headers["location"], follow_redirects=True)
            form = _auto_post_form(at_idp.text)
            done = client.post(form.pop("action"), data=form)
            assert done.status_code == 303, done.text
            yield client

    @contextmanager
    def later(self, seconds: float) -> Iterator[None]:
        """The broker's clock ``seconds`` ahead for the block (then back where it was)."""
        before = self.clock.offset
        self.clock.offset += seconds
        try:
            yield
        finally:
            self.clock.offset = before

    def token(self, **form: str) -> httpx.Response:
        return httpx.post(f"{self.url}/cli/token", data=form)

    def code_for(
        self, client: httpx.Client, verifier: str, *, role: str = READER, port: int = 43210
    ) -> str:
        """An authorization code approved in ``client`` (a signed-in browser) for ``verifier``."""
        query = {
            "port": str(port),
            "code_challenge": challenge_of(verifier),
            "state": "s" * 20,
            "role": role,
        }
        page = client.get("/cli/authorize", params=query)
        assert page.status_code == 200, page.text
        approved = client.post("/cli/authorize", data=approval_form(page.text))
        assert approved.status_code == 303, approved.text
        callback = urlsplit(approved.headers["location"])
        assert (callback.hostname, callback.port, callback.path) == ("127.0.0.1", port, "/callback")
        params = parse_qs(callback.query)
        assert params["state"] == ["s" * 20]
        return params["code"][0]

    def redeem(self, client: httpx.Client, role: str = READER) -> dict[str, Any]:
        """Credentials and a refresh token, through the loopback grant."""
        verifier = new_verifier()
        code = self.code_for(client, verifier, role=role)
        answer = self.token(grant_type="authorization_code", code=code, code_verifier=verifier)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def approval_form(page: str, decision: str = "approve") -> dict[str, str]:
    """The confirmation page's form as a browser would submit it (first role preselected)."""
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    }
    if "role" not in fields and 'class="roles cli-all-roles"' not in page:
        radio = re.search(r'<input type="radio" id="[^"]+" name="role" value="([^"]+)"', page)
        assert radio is not None, page
        fields["role"] = html.unescape(radio.group(1))
    selected = re.search(r'<option value="(\d+)" selected>', page)
    assert selected is not None, page
    return {**fields, "duration": selected.group(1), "decision": decision}


@contextmanager
def cli_broker(folder: Path) -> Iterator[CliBroker]:
    """The broker (in-thread, OffsetClock) and the fixture IdP, both on loopback."""
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    acs = f"{url}/saml/acs"
    alice = SamlUser(
        "alice",
        email=SESSION_NAME,
        roles=((READER, CORP), (OPS, CORP)),
        session_name=SESSION_NAME,
    )
    with serve_saml_in_thread(users=[alice], auto_login="alice") as idp:
        config = {
            "public_url": url,
            "token_keys": [{"id": "c1", "secret": base64.b64encode(os.urandom(32)).decode()}],
            "login": {
                "providers": {
                    "corp": {"label": "Corp SSO", "saml": {"account": DEV, "provider": "Corp"}}
                }
            },
            "accounts": {
                DEV: {
                    "alias": "dev",
                    "saml_providers": {"Corp": {"metadata_url": idp.metadata_url}},
                    "roles": {
                        "CliReader": {"max_session_duration": 7200, "trust_policy": _trust(acs)},
                        "CliOps": {"trust_policy": _trust(acs)},
                        "CliNotGranted": {"trust_policy": _trust(acs)},
                    },
                }
            },
        }
        path = folder / "broker.yaml"
        path.write_text(yaml.safe_dump(config))
        clock = OffsetClock()
        broker_url, running = start_server(create_app(load_config(path), clock=clock), sock)
        setup = CliBroker(url=broker_url, idp=idp, clock=clock)
        # The IdP verifies the broker's signed AuthnRequests, as in test_saml.
        idp.idp.register_sp(f"{url}/saml/metadata", (acs,), cert=_sp_certificate(setup))
        try:
            yield setup
        finally:
            stop_server(running)


# ---------------------------------------------------------------------- the CLI process


@dataclass
class CliHome:
    """A user's machine for the CLI: HOME, AWS files and a ``$BROWSER`` that records URLs."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def config_file(self) -> Path:
        return self.root / "aws" / "config"

    @property
    def credentials_file(self) -> Path:
        return self.root / "aws" / "credentials"

    @property
    def xdg_config(self) -> Path:
        """``$XDG_CONFIG_HOME``: ``sts-broker configure`` writes ``sts-broker/config`` here."""
        return self.root / "xdg"

    @property
    def opened(self) -> Path:
        """Where the ``$BROWSER`` script writes each URL it is asked to open."""
        return self.root / "browser-opened.txt"

    def cache_file(self, profile: str) -> Path:
        return self.home / ".aws" / "sts-broker" / "cache" / f"{profile}.json"

    def cache(self, profile: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.cache_file(profile).read_text())
        return value

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``python -m broker ARGS`` as a real process; stderr is a pipe to read prompts."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker", *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        """End the CLI processes a failed test left waiting (each by its own handle)."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``python -m broker ARGS`` to its end, ``stdin`` typed in."""
        return self.execute([sys.executable, "-m", "broker", *args], stdin)

    def execute(self, command: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Any command, in this user's environment and folder, to its end."""
        return subprocess.run(
            command,
            input=stdin,
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def caller(self, profile: str, endpoint: str | None = None) -> str:
        """The ARN ``aws sts get-caller-identity`` prints for ``profile`` (the real AWS
        CLI), with ``--endpoint-url endpoint`` or, without, as the profile points it."""
        flags = ["--endpoint-url", endpoint] if endpoint else []
        done = self.aws("sts", "get-caller-identity", "--profile", profile, *flags)
        assert done.returncode == 0, done.stderr
        arn: str = json.loads(done.stdout)["Arn"]
        return arn

    def aws(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real AWS CLI (``aws`` next to this Python), in this user's environment."""
        found = shutil.which("aws", path=str(Path(sys.executable).parent))
        assert found, "the AWS CLI is a test dependency (awscli)"
        return self.execute([found, *args])


def cli_home(root: Path) -> CliHome:
    """A clean environment: no AWS_* variables from the outer shell, files under ``root``."""
    setup = CliHome(root)
    setup.home.mkdir(parents=True)
    browser = root / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{setup.opened}"\n')
    browser.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(setup.home),
        AWS_CONFIG_FILE=str(setup.config_file),
        AWS_SHARED_CREDENTIALS_FILE=str(setup.credentials_file),
        AWS_DEFAULT_REGION="us-east-1",
        BROWSER=str(browser),
        PYTHONPATH=str(ROOT),
    )
    env.pop("STS_BROKER_CONFIG", None)
    env.pop("STS_BROKER_CLI_CONFIG", None)
    env["XDG_CONFIG_HOME"] = str(setup.xdg_config)
    setup.env = env
    return setup


def logged_in(cli: CliBroker, user: CliHome, profile: str, role: str = READER) -> None:
    """What a finished ``login --role ROLE --profile PROFILE`` leaves (the real CLI, the
    browser step done in a signed-in httpx browser)."""
    proc = user.start("login", "--broker", cli.url, "--role", role, "--profile", profile)
    url = url_in(read_until(proc, "Waiting for you to approve"), f"{cli.url}/cli/authorize?")
    with cli.signed_in() as browser:
        page = browser.get(url)
        approved = browser.post("/cli/authorize", data=approval_form(page.text))
        browser.get(approved.headers["location"])
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """The CLI's stderr up to and including the line containing ``marker`` (it blocks on
    the pipe, so it waits exactly until the CLI says it; the process dying ends it)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"the CLI ended without printing {marker!r}: {''.join(seen)}")


def url_in(text: str, prefix: str) -> str:
    found = re.search(rf"({re.escape(prefix)}\S+)", text)
    assert found is not None, text
    return found.group(1)
