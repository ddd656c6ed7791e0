"""The secret scanner of tests/audit_scan.py finds every kind of leak it claims to find.

The security suite's audit check (tests/security/test_audit_secrets.py) passes when the
scanner finds nothing, so the scanner itself must be shown to find things: each test here
builds a real secret (a sealed session token and its secret key, a signed SAML response, an
ID token from the fixture provider, a TOTP code, a browser session cookie), puts it into an
otherwise realistic event the way a bug would, and checks the finding. A clean event built
by the real event builder from the same call must give no finding at all.
"""

from __future__ import annotations

import base64
import copy
import os
from collections.abc import Callable
from typing import Any

import pytest

from broker.clock import FrozenClock
from broker.identity import SessionClaims, TokenSealer
from broker.observability import AuditTrail, RequestFacts
from broker.sts.audit import record_call
from broker.totp import decode_secret, totp_now
from idp_fixtures import OidcProvider
from tests.audit_scan import SecretScanner
from tests.saml_builders import encode, signed_response
from tests.unit.test_web_sessions import login_as, sessions_for

NOW = 1_800_000_000.0
ROLE = "arn:aws:iam::111111111111:role/Dev"


def _credentials() -> tuple[dict[str, Any], str, str]:
    """A real AssumeRole result, its session token and its secret key."""
    sealer = TokenSealer([("k1", os.urandom(32))])
    claims = SessionClaims(
        access_key_id="ASIABTXV5AHDXZLCH5VC",
        account="111111111111",
        kind="assumed-role",
        arn="arn:aws:sts::111111111111:assumed-role/Dev/alice",
        user_id="AROAHXH5WXBI45UGN52YG:alice",
        principal_name="Dev",
        principal_path="/",
        issued_at=int(NOW),
        expires_at=int(NOW) + 3600,
    )
    token, secret = sealer.seal(claims)
    result = {
        "Credentials": {
            "AccessKeyId": claims.access_key_id,
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": float(claims.expires_at),
        },
        "AssumedRoleUser": {"AssumedRoleId": claims.user_id, "Arn": claims.arn},
        "SourceIdentity": None,
    }
    return result, token, secret


def _event(result: dict[str, Any]) -> dict[str, Any]:
    """The event the real builder makes for an AssumeRole call with this result."""
    captured: list[dict[str, Any]] = []
    trail = AuditTrail([], region="us-east-1", clock=FrozenClock(NOW))
    from broker.observability.audit import subscribe  # noqa: PLC0415

    stop = subscribe(lambda event: captured.append(dict(event)))
    try:
        record_call(
            trail,
            action="AssumeRole",
            facts=RequestFacts("192.0.2.10", "Boto3/1.34 md/Botocore#1.34", "req-1"),
            params={"RoleArn": ROLE, "RoleSessionName": "alice", "DurationSeconds": 3600},
            caller=None,
            claimed_key="AKIAQRSTUVWXYZEXAMPLE",
            verified=None,
            result=result,
            error=None,
        )
    finally:
        stop()
    assert len(captured) == 1
    return captured[0]


def _scanner_that_saw(result: dict[str, Any]) -> SecretScanner:
    """A scanner that learnt the call's secrets from its XML answer, as the tap would."""
    scanner = SecretScanner()
    creds = result["Credentials"]
    scanner.learn_text(
        f"<SecretAccessKey>{creds['SecretAccessKey']}</SecretAccessKey>"
        f"<SessionToken>{creds['SessionToken']}</SessionToken>",
        "answer to POST /",
    )
    return scanner


def test_the_real_event_of_a_call_has_no_finding() -> None:
    result, token, secret = _credentials()
    scanner = _scanner_that_saw(result)
    assert set(scanner.secrets) == {token, secret}
    event = _event(result)
    assert event["responseElements"]["credentials"]["accessKeyId"] == "ASIABTXV5AHDXZLCH5VC"
    assert scanner.findings(event) == []


def _put(event: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    leaked = copy.deepcopy(event)
    if where == "credentials":
        leaked["responseElements"]["credentials"]["extra"] = value
    elif where == "message":
        leaked["errorMessage"] = f"refused: {value} was not accepted"
    elif where == "additional":
        leaked["additionalEventData"] = {"note": value}
    else:
        leaked[where] = value
    return leaked


def test_a_leaked_session_token_and_secret_key_are_found_anywhere() -> None:
    result, token, secret = _credentials()
    scanner = _scanner_that_saw(result)
    event = _event(result)
    for where in ("credentials", "message", "additional", "userAgent"):
        for value in (token, secret):
            assert any(
                "holds a secret seen in" in f for f in scanner.findings(_put(event, where, value))
            )


def test_a_session_token_is_found_by_its_shape_when_the_run_never_showed_it() -> None:
    result, token, _ = _credentials()
    findings = SecretScanner().findings(_put(_event(result), "additional", token))
    assert any("sealed session token" in f for f in findings), findings


def test_a_leaked_secret_member_name_is_found() -> None:
    result, _, _ = _credentials()
    event = _event(result)
    event["responseElements"]["credentials"]["sessionToken"] = "<redacted?>"
    findings = SecretScanner().findings(event)
    assert any("'sessionToken'" in f for f in findings), findings


def test_a_leaked_saml_assertion_is_found_raw_and_encoded() -> None:
    posted = encode(signed_response())
    xml = base64.b64decode(posted).decode()
    scanner = SecretScanner()
    scanner.learn_pairs([("SAMLResponse", posted)], "request POST /saml/acs form")
    result, _, _ = _credentials()
    event = _event(result)
    assert scanner.findings(event) == []
    encoded = scanner.findings(_put(event, "additional", posted))
    assert any("seen in request POST /saml/acs form SAMLResponse" in f for f in encoded)
    assert any("XML document" in f for f in encoded)
    assert any("XML document" in f for f in SecretScanner().findings(_put(event, "message", xml)))


def test_a_leaked_id_token_is_found() -> None:
    token = OidcProvider("http://127.0.0.1:9/issuer").id_token("alice", aud="test-client")
    scanner = SecretScanner()
    scanner.learn_pairs([("WebIdentityToken", token)], "request POST / form")
    result, _, _ = _credentials()
    leaked = _put(_event(result), "message", token)
    findings = scanner.findings(leaked)
    assert any("WebIdentityToken" in f for f in findings), findings
    assert any("holds a JWT" in f for f in SecretScanner().findings(leaked))


def test_a_leaked_totp_code_is_found_as_a_value_but_not_inside_other_numbers() -> None:
    code = totp_now(decode_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), NOW)
    scanner = SecretScanner()
    scanner.learn_pairs([("TokenCode", code), ("SerialNumber", "arn:aws:iam::1:mfa/a")], "form")
    assert scanner.totp_codes == {code}
    result, _, _ = _credentials()
    event = _event(result)
    assert scanner.findings(event) == []
    event["requestParameters"]["tokenCode"] = code
    findings = scanner.findings(event)
    assert any("is a TOTP code" in f for f in findings), findings
    assert any("'tokenCode'" in f for f in findings), findings
    clean = _event(result)
    clean["recipientAccountId"] = f"1{code}11111"  # the code inside a longer number
    assert scanner.findings(clean) == []


def test_a_leaked_session_cookie_is_found() -> None:
    sessions, _, _ = sessions_for()
    cookie = login_as(sessions, {"user": "alice"})
    scanner = SecretScanner()
    scanner.learn_headers([(b"cookie", f"sts-broker={cookie}".encode())], "request GET /roles")
    result, _, _ = _credentials()
    findings = scanner.findings(_put(_event(result), "additional", cookie))
    assert any("seen in request GET /roles cookie" in f for f in findings), findings


@pytest.mark.parametrize(
    "learn",
    [
        lambda s: s.learn_headers([(b"set-cookie", b"sid=0123456789abcdef0123; Path=/")], "x"),
        lambda s: s.learn_json('{"SecretAccessKey": "0123456789abcdef0123"}', "x"),
        lambda s: s.learn_text(
            '<input type="hidden" name="csrf_token" value="0123456789abcdef0123">', "x"
        ),
        lambda s: s.learn_headers(
            [(b"location", b"http://127.0.0.1/cb?code=0123456789abcdef0123")], "x"
        ),
    ],
    ids=["set-cookie", "json-answer", "hidden-field", "redirect-code"],
)
def test_the_tap_learns_secrets_from_each_place_they_travel(
    learn: Callable[[SecretScanner], None],
) -> None:
    scanner = SecretScanner()
    learn(scanner)
    assert set(scanner.secrets) == {"0123456789abcdef0123"}
