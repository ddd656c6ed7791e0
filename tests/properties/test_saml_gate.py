"""The SAML XML gate and the verifier behind it answer every document with their own refusal.

The gate (:func:`broker.identity.saml.xml.parse_xml`) gets arbitrary bytes and generated
XML (DOCTYPEs, encodings, comments, processing instructions, deep nesting, repeated IDs);
the verifier gets arbitrary base64, byte-level mutations of a genuinely signed Response,
and signed Responses whose attributes are arbitrary (so the attribute and tag rules run
behind a good signature). Outcomes: a parsed tree or ``XmlRefused``; an identity or an
``StsError`` with a code from the verifier's table. Never another exception.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from pathlib import Path

from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from broker.errors import StsError
from broker.identity import SamlIdentity, SamlVerifier
from broker.identity.saml.xml import MAX_DEPTH, XmlRefused, parse_xml
from tests.properties.budget import IDP_CODES, budget
from tests.saml_builders import AWS, PROVIDER_ARN, ROLE_ARN, Harness, encode, signed_response

CODES = IDP_CODES

_names = st.sampled_from(["a", "b", "saml:Assertion", "Response", "x:y", "xi:include", "Sig"])
_attrs = st.dictionaries(
    st.sampled_from(["ID", "Id", "id", "xml:id", "Name", "x", "xmlns:xi", "xmlns"]),
    st.sampled_from(["_1", "_2", "http://www.w3.org/2001/XInclude", "urn:x", "v"]),
    max_size=3,
)
_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<&"), max_size=8
)


def _element(name: str, attrs: dict[str, str], children: list[str]) -> str:
    rendered = "".join(f' {key}="{value}"' for key, value in attrs.items())
    return f"<{name}{rendered}>{''.join(children)}</{name}>"


_xml = st.recursive(
    st.one_of(_texts, st.sampled_from(["<!-- c -->", "<?pi x?>", "<![CDATA[x]]>", "&amp;"])),
    lambda inner: st.builds(_element, _names, _attrs, st.lists(inner, max_size=3)),
    max_leaves=15,
)
_prologs = st.sampled_from(
    [
        "",
        '<?xml version="1.0"?>',
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        '<!DOCTYPE r [<!ENTITY e "x">]>',
        '<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://x/">',
        "\ufeff",
    ]
)


@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(_prologs, _xml).map(lambda p: (p[0] + p[1]).encode("utf-8")),
        st.integers(MAX_DEPTH - 2, MAX_DEPTH + 3).map(lambda n: ("<a>" * n + "</a>" * n).encode()),
    )
)
@settings(max_examples=budget(200))
@example(b'<a ID="_1"><b ID="_1"/></a>')
@example(b'<?xml version="1.0" encoding="UTF-16"?><a/>')
@example(b"\xff\xfe<\x00a\x00/\x00>\x00")
@example(b"<a>" * 100_000)
def test_the_gate_parses_or_refuses_every_document(data: bytes) -> None:
    try:
        parsed = parse_xml(data, max_bytes=262144, what="document")
    except XmlRefused as exc:
        assert str(exc).startswith("The document ")
        return
    assert isinstance(parsed.root, etree._Element)


class _Verifier:
    """One verifier, one event loop, the Harness's provider files, for every example."""

    def __init__(self) -> None:
        self.harness = Harness(Path(tempfile.mkdtemp(prefix="saml-properties-")))
        self._runner = asyncio.Runner()
        self._verifier = SamlVerifier(self.harness.config, self.harness.clock)

    def __call__(self, saml_response: str) -> SamlIdentity | StsError:
        async def run() -> SamlIdentity | StsError:
            try:
                return await self._verifier.verify(
                    saml_response, provider_arn=PROVIDER_ARN, api=True
                )
            except StsError as exc:
                return exc

        return self._runner.run(run())


VERIFY = _Verifier()
SIGNED = base64.b64decode(encode(signed_response()))


def _known(result: SamlIdentity | StsError) -> None:
    event("accepted" if isinstance(result, SamlIdentity) else result.code)
    if isinstance(result, StsError):
        assert result.code in CODES, result
        assert 400 <= result.status < 500


@given(
    st.one_of(
        st.text(max_size=100), st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
    )
)
@settings(max_examples=budget(100))
@example("")
@example("====")
@example(base64.b64encode(b"<samlp:Response/>" * 10).decode())
def test_arbitrary_responses_are_refused(text: str) -> None:
    result = VERIFY(text)
    assert isinstance(result, StsError)
    _known(result)


@given(
    st.lists(
        st.tuples(
            st.integers(0, len(SIGNED) - 1),
            st.integers(0, 40),
            st.binary(max_size=12) | st.sampled_from([b"<", b">", b'"', b"<!--x-->", b"ID"]),
        ),
        min_size=1,
        max_size=3,
    )
)
@settings(max_examples=budget(100))
def test_mutated_signed_responses_are_refused_or_still_verify(
    edits: list[tuple[int, int, bytes]],
) -> None:
    data = bytearray(SIGNED)
    for start, length, replacement in edits:
        data[start : start + length] = replacement
    _known(VERIFY(base64.b64encode(bytes(data)).decode()))


_XML_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"),
    whitelist_characters="\t\n",
    blacklist_characters="\ufffe\uffff",
)
"""What an XML document can carry at all (lxml refuses to build anything else)."""

_attribute_names = st.one_of(
    st.sampled_from(
        [
            AWS + "Role",
            AWS + "RoleSessionName",
            AWS + "SessionDuration",
            AWS + "SourceIdentity",
            AWS + "TransitiveTagKeys",
            AWS + "role",
            "urn:oid:0.9.2342.19200300.100.1.3",
        ]
    ),
    st.text(_XML_CHARS, max_size=20).map(lambda key: AWS + "PrincipalTag:" + key),
    st.text(_XML_CHARS, max_size=20),
)
_attribute_values = st.lists(
    st.one_of(
        st.text(_XML_CHARS, max_size=40),
        st.sampled_from([f"{ROLE_ARN},{PROVIDER_ARN}", "900", "alice", "aws:x", "v" * 257]),
    ),
    max_size=3,
)


@given(st.dictionaries(_attribute_names, _attribute_values, max_size=5))
@settings(max_examples=budget(100))
@example({AWS + "PrincipalTag:team": ["a\tb"]})
@example({AWS + "PrincipalTag:aws:team": ["v"], AWS + "RoleSessionName": ["alice"]})
def test_signed_responses_with_any_attributes_verify_or_are_refused(
    attributes: dict[str, list[str]],
) -> None:
    attributes.setdefault(AWS + "Role", [f"{ROLE_ARN},{PROVIDER_ARN}"])
    result = VERIFY(encode(signed_response(attributes=attributes)))
    _known(result)
    if isinstance(result, SamlIdentity):
        for key, value in result.session_tags.items():
            assert 1 <= len(key) <= 128 and len(value) <= 256
