"""A broker with upstream accounts, on loopback: what the upstream-account tests share.

One broker (in a thread, real uvicorn) whose accounts name roles in an upstream STS: moto
(lenient: it issues whatever it is asked) or a second broker (strict: it checks the web
identity token against the first broker's issuer, its own trust policies, tags and source
identity). People sign in through the fixture SAML IdP (``People`` from the people-page
tests, driven with httpx as a browser would be) or bring a Google-style token from the
fixture OIDC provider. The broker's own AWS credentials (``via: assume-role``) are a
profile in AWS files of its own, set in the environment only while the broker is built.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from botocore.config import Config

from broker.app import create_app
from broker.config import load_config
from idp_fixtures import SamlUser
from idp_fixtures.saml import SamlServer, serve_saml_in_thread
from idp_fixtures.saml.presets import okta
from tests.integration.conftest import bind_loopback, start_server, stop_server
from tests.integration.test_people import People, _assume, _block, _csrf
from tests.integration.test_saml import _sp_certificate

RSN = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
TAG = "https://aws.amazon.com/SAML/Attributes/PrincipalTag:"
SOURCE = "https://aws.amazon.com/SAML/Attributes/SourceIdentity"


def saml_trust(provider: str, acs: str) -> dict[str, Any]:
    """The broker's trust policy: the account's Corp IdP, its sign-in URL as audience."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"],
                "Condition": {"StringEquals": {"saml:aud": acs}},
            }
        ],
    }


def google_trust(audience: str, **conditions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "accounts.google.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"accounts.google.com:aud": audience, **conditions}},
            }
        ],
    }


@dataclass
class UpstreamBroker:
    """The running broker, its SAML IdP, and where its log lines went."""

    url: str
    idp: SamlServer
    logs: list[str] = field(default_factory=list)

    @property
    def acs(self) -> str:
        return f"{self.url}/saml/acs"

    def people(self) -> People:
        return People(url=self.url, idp=self.idp)

    def assertion(self, role: str, provider: str, session_name: str, **options: Any) -> str:
        """A SAML response from the fixture IdP for the STS API (unsolicited, base64)."""
        return okta(
            self.idp.idp,
            sp_entity_id=f"{self.url}/saml/metadata",
            acs_url=self.acs,
            roles=((role, provider),),
            session_name=session_name,
            **options,
        )

    def sts(self) -> Any:
        """An unsigned boto3 STS client for the broker (AssumeRoleWith* carry their proof)."""
        return boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
            aws_access_key_id="unused",
            aws_secret_access_key="unused",
        )

    def credentials_page(
        self, client: httpx.Client, role_arn: str, duration: str = "3600"
    ) -> dict[str, str]:
        """Pick ``role_arn`` on the role picker (Credentials) and read the keys the page shows."""
        page = _assume(client, role_arn, duration=duration)
        assert page.status_code == 200, page.text
        exports = dict(re.findall(r"export (AWS_\w+)='([^']*)'", _block(page.text, "bash")))
        return exports

    def console_redirect(self, client: httpx.Client, role_arn: str) -> httpx.Response:
        token = _csrf(client.get("/roles").text)
        data = {"csrf_token": token, "role": role_arn, "duration": "3600", "target": "console"}
        return client.post("/assume", data=data)


class _Lines(logging.Handler):
    """Every log record of the servers, formatted with its arguments (a secret could hide in
    either). The test's own clients run in the main thread; their botocore, which logs the
    answers it parses at DEBUG, is not the broker's to answer for."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName == "MainThread":
            return
        self._into.append(f"{record.name}: {record.getMessage()} {record.exc_text or ''}")


@contextmanager
def upstream_broker(
    folder: Path,
    *,
    config_for: Callable[[str, str], Mapping[str, Any]],
    users: list[SamlUser],
    aws_profiles: Mapping[str, tuple[str, str]] | None = None,
) -> Iterator[UpstreamBroker]:
    """Start the broker with ``config_for(url, acs)`` and the SAML IdP signing ``users`` in.

    ``aws_profiles`` (name -> key ID, secret) are written to AWS files of the broker's own,
    which botocore reads while the broker is built (``upstream.credentials.profile``).
    """
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    acs = f"{url}/saml/acs"
    aws_config = folder / "aws-config"
    aws_config.write_text(
        "".join(
            f"[profile {name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
            for name, (key, secret) in (aws_profiles or {}).items()
        )
    )
    (folder / "aws-credentials").write_text("")
    logs: list[str] = []
    handler = _Lines(logs)
    root = logging.getLogger()
    previous_level = root.level
    with serve_saml_in_thread(users=users, auto_login=users[0].username) as idp:
        config = dict(config_for(url, acs))
        config.setdefault(
            "token_keys", [{"id": "u1", "secret": base64.b64encode(os.urandom(32)).decode()}]
        )
        path = folder / "broker.yaml"
        path.write_text(yaml.safe_dump(config).replace("IDP_METADATA_URL", idp.metadata_url))
        with pytest.MonkeyPatch.context() as env:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                env.delenv(name, raising=False)
            env.setenv("AWS_CONFIG_FILE", str(aws_config))
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "aws-credentials"))
            env.setenv("AWS_EC2_METADATA_DISABLED", "true")
            app = create_app(load_config(path))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        broker_url, running = start_server(app, sock)
        setup = UpstreamBroker(url=broker_url, idp=idp, logs=logs)
        idp.idp.register_sp(f"{url}/saml/metadata", (acs,), cert=_sp_certificate(setup.people()))
        try:
            yield setup
        finally:
            stop_server(running)
            root.removeHandler(handler)
            root.setLevel(previous_level)


def assert_no_secret_logged(logs: list[str], *secrets: str) -> None:
    """None of ``secrets`` appears in any log line (the broker's, botocore's, httpx's)."""
    for secret in secrets:
        assert secret
        leaked = [line for line in logs if secret in line]
        assert not leaked, f"a secret was logged: {leaked[:3]}"
