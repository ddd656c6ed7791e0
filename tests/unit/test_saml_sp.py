"""The SP's own SAML messages, read back by pysaml2 as an independent peer."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, quote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from saml2 import md, samlp

from broker.identity.saml import load_sp_credentials
from broker.identity.saml.sp import (
    HTTP_POST,
    RSA_SHA256,
    authn_request,
    new_request_id,
    redirect_url,
    sp_metadata,
)

SP = "http://127.0.0.1:8080/saml/metadata"
ACS = "http://127.0.0.1:8080/saml/acs"
CREDS = load_sp_credentials(None, None, entity_id=SP, now=1_800_000_000)


def test_metadata_parses_with_pysaml2() -> None:
    entity = md.entity_descriptor_from_string(
        sp_metadata(entity_id=SP, acs_url=ACS, credentials=CREDS).decode()
    )
    assert entity.entity_id == SP
    sp = entity.spsso_descriptor[0]
    assert sp.authn_requests_signed == "true"
    assert sp.want_assertions_signed == "true"
    acs = sp.assertion_consumer_service[0]
    assert (acs.binding, acs.location) == (HTTP_POST, ACS)
    uses = sorted(k.use for k in sp.key_descriptor)
    assert uses == ["encryption", "signing"]


def test_redirect_binding_request_is_signed_and_parses() -> None:
    request_id = new_request_id()
    xml = authn_request(
        request_id=request_id,
        entity_id=SP,
        acs_url=ACS,
        destination="https://idp.example.com/sso",
        now=1_800_000_000,
    )
    url = redirect_url("https://idp.example.com/sso?tenant=7", xml, "handle-123", CREDS)
    parts = urlsplit(url)
    assert parts.query.startswith("tenant=7&SAMLRequest=")
    params = parse_qs(parts.query)
    inflated = zlib.decompress(base64.b64decode(params["SAMLRequest"][0]), -15)
    parsed = samlp.authn_request_from_string(inflated.decode())
    assert parsed.id == request_id
    assert parsed.issuer.text == SP
    assert parsed.assertion_consumer_service_url == ACS
    assert parsed.protocol_binding == HTTP_POST
    assert parsed.destination == "https://idp.example.com/sso"
    assert params["RelayState"] == ["handle-123"]
    assert params["SigAlg"] == [RSA_SHA256]
    # The IdP verifies the signature over the encoded parameters exactly as sent.
    signed = (
        f"SAMLRequest={quote(params['SAMLRequest'][0], safe='')}"
        f"&RelayState={quote(params['RelayState'][0], safe='')}"
        f"&SigAlg={quote(RSA_SHA256, safe='')}"
    )
    CREDS.certificate.public_key().verify(  # type: ignore[union-attr,call-arg]
        base64.b64decode(params["Signature"][0]),
        signed.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_request_ids_are_unique_ncnames() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i[0].isalpha() for i in ids)
