"""How long a SAML assertion lives (issue 15, finding 5): a few minutes past its IssueInstant.

An IdP may write any ``NotOnOrAfter``; the probe's assertion said 31 years and was accepted,
and its replay record was kept that long. ``saml.max_assertion_lifetime_seconds`` (default
300) caps both: the assertion is refused once it is older than that (beyond the clock
skew), and the replay record lives no longer than it could still be presented.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from broker.app import create_app
from broker.clock import FrozenClock
from broker.config import load_config
from tests.integration.conftest import bind_loopback, start_server, stop_server
from tests.saml_builders import (
    ACCOUNT,
    NOW,
    PROVIDER_ARN,
    ROLE_ARN,
    Harness,
    encode,
    signed_response,
)

YEARS_31 = 31 * 365 * 86400
ISSUED = NOW - 5


def _decades(**kw: Any) -> str:
    return encode(
        signed_response(
            scd_not_on_or_after=NOW + YEARS_31,
            not_on_or_after=NOW + YEARS_31,
            issue_instant=ISSUED,
            **kw,
        )
    )


def test_the_lifetime_caps_acceptance_at_issue_instant_plus_five_minutes(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    identity = harness.verify(_decades())
    assert identity.not_on_or_after == ISSUED + 300
    harness.clock.set(NOW + 600)  # past 300 s and the 300 s skew
    error = harness.refusal(_decades(id="_a2"))
    assert (error.code, error.status) == ("ExpiredTokenException", 400)
    assert "saml.max_assertion_lifetime_seconds" in error.message


def test_the_lifetime_is_configurable(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    path = tmp_path / "broker.yaml"
    text = path.read_text().replace("saml: {", "saml: {max_assertion_lifetime_seconds: 1800, ")
    path.write_text(text)
    harness.config = load_config(path, environ={})
    harness.clock.set(NOW + 1200)
    assert harness.verify(_decades()).not_on_or_after == ISSUED + 1800


def test_a_short_not_on_or_after_still_wins(tmp_path: Path) -> None:
    identity = Harness(tmp_path).verify(encode(signed_response(scd_not_on_or_after=NOW + 60)))
    assert identity.not_on_or_after == NOW + 60


# --------------------------------------------------------------------------- the replay record


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    harness = Harness(tmp_path)  # writes the metadata and SP files beside broker.yaml
    path = tmp_path / "broker.yaml"
    data = yaml.safe_load(path.read_text())
    data["state"] = "sqlite:///state.db"
    data["accounts"][ACCOUNT]["roles"] = {
        "Dev": {
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": PROVIDER_ARN},
                        "Action": "sts:AssumeRoleWithSAML",
                    }
                ],
            }
        }
    }
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, environ={})
    assert harness.config.public_url == config.public_url
    url, running = start_server(create_app(config, clock=FrozenClock(NOW)), bind_loopback())
    try:
        yield url
    finally:
        stop_server(running)


def test_the_replay_record_is_kept_only_while_the_assertion_could_be_presented(
    served: str, tmp_path: Path
) -> None:
    sts = boto3.client(
        "sts",
        endpoint_url=served,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, signature_version=botocore_unsigned()),
    )
    out = sts.assume_role_with_saml(
        RoleArn=ROLE_ARN, PrincipalArn=PROVIDER_ARN, SAMLAssertion=_decades()
    )
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    with pytest.raises(ClientError) as caught:
        sts.assume_role_with_saml(
            RoleArn=ROLE_ARN, PrincipalArn=PROVIDER_ARN, SAMLAssertion=_decades()
        )
    assert caught.value.response["Error"]["Code"] == "InvalidIdentityToken"  # the replay
    with sqlite3.connect(tmp_path / "state.db") as db:
        ((expires,),) = db.execute("SELECT expires FROM entries WHERE ns = 'saml-assertion'")
    # Until the assertion stops being acceptable (issued + 300 s), plus the replay margin.
    assert expires - NOW <= 300 + 300 + 1, expires - NOW


def botocore_unsigned() -> Any:
    from botocore import UNSIGNED  # noqa: PLC0415

    return UNSIGNED
