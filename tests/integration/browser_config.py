"""The integration test config plus browser sign-in: a SAML provider read from a metadata
file (nothing fetched) and a login button for it, so every page route is served."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from broker.app import create_app, load_broker_config
from broker.store import Store
from tests.integration.conftest import (
    DEV,
    Broker,
    OffsetClock,
    _key,
    bind_loopback,
    start_server,
    stop_server,
    write_config,
)
from tests.saml_builders import IDP_ENTITY, keypair, metadata

CORP = f"arn:aws:iam::{DEV}:saml-provider/Corp"


def write_browser_config(folder: Path, public_url: str, **top: Any) -> tuple[Path, Broker]:
    """``write_config``'s file with a Corp SAML provider and a ``corp`` login button."""
    keys = {name: _key(i) for i, name in enumerate(["alice", "bob", "bob_old", "carol", "dave"])}
    totp = {"alice": base64.b32encode(os.urandom(20)).decode()}
    path = folder / "broker.yaml"
    write_config(path, keys, totp, public_url)
    (folder / "idp.xml").write_bytes(metadata(IDP_ENTITY, [keypair("idp").cert]))
    data = yaml.safe_load(path.read_text())
    data["accounts"][DEV]["saml_providers"] = {"Corp": {"metadata_file": "idp.xml"}}
    data["login"] = {
        "providers": {"corp": {"label": "Corp SSO", "saml": {"account": DEV, "provider": "Corp"}}}
    }
    data.update(top)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    broker = Broker(url=public_url, clock=OffsetClock(), config_path=path, keys=keys, totp=totp)
    return path, broker


@contextmanager
def served_browser_broker(
    folder: Path, *, store: Store | None = None, **top: Any
) -> Iterator[Broker]:
    """That config (``top`` replacing top-level keys) served on loopback; ``store``
    replaces the configured state if given."""
    sock = bind_loopback()
    path, broker = write_browser_config(folder, f"http://127.0.0.1:{sock.getsockname()[1]}", **top)
    config = load_broker_config(
        path, environ={"TEST_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    )
    url, running = start_server(create_app(config, clock=broker.clock, store=store), sock)
    try:
        broker.url = url
        yield broker
    finally:
        stop_server(running)
