"""No audit event of the security suite holds a secret, and every one fits the schema.

Runs last in tests/security (see its conftest): by then the suite's attacks (SigV4 forgery,
CLI login and OIDC login attacks, browser sign-ins through the fixture IdPs) have made
their events. This test adds calls the suite makes rarely (MFA codes, console sign-in,
issued web identity tokens, refused signatures) on a broker of its own, then scans every
captured event with :class:`~tests.audit_scan.SecretScanner`, which knows each secret the
run's traffic carried; tests/unit/test_audit_scan.py shows it finds each kind when leaked.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema

from tests.integration.observed import api_calls, observed_broker
from tests.security.conftest import AuditCapture

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "audit-event.schema.json"


def test_no_audit_event_of_the_suite_holds_a_secret(
    audit_capture: AuditCapture, tmp_path: Path
) -> None:
    with observed_broker(tmp_path) as observed:
        api_calls(observed.broker)
    events = audit_capture.events
    names = Counter(e["eventName"] for e in events)
    assert {
        "GetSessionToken",
        "AssumeRole",
        "GetCallerIdentity",
        "GetWebIdentityToken",
        "GetSigninToken",
        "ConsoleLogin",
    } <= set(names), names
    scanner = audit_capture.scanner
    places = " ".join(scanner.secrets.values())
    # The tap saw the secrets it must guard against, or an empty scan would prove nothing.
    for kind in ("XML answer", "set-cookie", "SigV4 signature", "signintoken"):
        assert kind in places, f"the traffic tap learnt no {kind}"
    assert scanner.totp_codes, "the traffic tap learnt no TOTP code"
    leaks = {
        f"{e['eventName']} {e['requestID']}": found
        for e in events
        if (found := scanner.findings(e))
    }
    assert not leaks, json.dumps(leaks, indent=2)


def test_every_audit_event_of_the_suite_fits_the_schema(audit_capture: AuditCapture) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    assert audit_capture.events
    problems = {
        f"{e['eventName']} {e.get('requestID')}": [
            error.message for error in validator.iter_errors(e)
        ]
        for e in audit_capture.events
        if not validator.is_valid(e)
    }
    assert not problems, json.dumps(problems, indent=2)[:4000]
