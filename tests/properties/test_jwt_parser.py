"""The web identity verifier answers every token with an identity or a refusal of its own.

Two kinds of input: tokens assembled from arbitrary parts (headers and payloads of any JSON
or none, any signature), which exercise the compact-form and header checks; and payloads of
arbitrary claims *validly signed* by the provider's own key, which get past the signature
and exercise every claim rule, the tags claim among them. Keys come from a ``jwks_file``,
so nothing is fetched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from broker.clock import FrozenClock
from broker.config import BrokerConfig
from broker.errors import StsError
from broker.identity import WebIdentity, WebIdentityVerifier
from tests.properties.budget import IDP_CODES, budget
from tests.unit.test_oidc import ACCOUNT, CLIENT, NOW, make_config, public_jwk, rsa_key, sign

URL = "https://idp.example.com/realm"
CODES = IDP_CODES
TAGS = "https://aws.amazon.com/tags"


def _config() -> BrokerConfig:
    folder = Path(tempfile.mkdtemp(prefix="jwt-properties-"))
    path = folder / "keys.json"
    path.write_text(json.dumps({"keys": [public_jwk(rsa_key(), "k1")]}))
    return make_config({"url": URL, "client_ids": [CLIENT], "jwks_file": str(path)})


CONFIG = _config()


_RUNNER = asyncio.Runner()
"""One event loop and one verifier for every example: building them is most of the cost."""
_VERIFIER = _RUNNER.run(asyncio.sleep(0, WebIdentityVerifier(CONFIG, FrozenClock(NOW))))


def _verify(token: str) -> WebIdentity | StsError:
    async def run() -> WebIdentity | StsError:
        try:
            return await _VERIFIER.verify(token, account=ACCOUNT)
        except StsError as exc:
            return exc

    return _RUNNER.run(run())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
_segment = st.one_of(
    _json.map(lambda v: _b64(json.dumps(v).encode())),
    st.binary(max_size=40).map(_b64),
    st.text(max_size=12),
    st.just(""),
)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "ES256", "none", "HS256", "PS256", "rs256"]) | _json,
        "kid": st.sampled_from(["k1", "k2", ""]) | _json,
        "typ": st.sampled_from(["JWT", "at+jwt"]) | _json,
        "crit": _json,
        "jku": st.just("https://evil.example/jwks"),
        "x5t": _json,
    },
)


@given(
    st.one_of(
        st.tuples(_headers.map(lambda h: _b64(json.dumps(h).encode())), _segment, _segment),
        st.tuples(_segment, _segment, _segment),
    ).map(".".join)
    | st.text(max_size=60)
)
@settings(max_examples=budget(150))
@example("a.b.c.d.e")
@example(_b64(b'{"alg":"RS256","alg":"none"}') + "." + _b64(b"{}") + ".c2ln")
@example(_b64(b'{"alg":"RS256"}') + "." + _b64(b"[" * 3000) + ".c2ln")
def test_assembled_tokens_are_refused_with_a_known_code(token: str) -> None:
    result = _verify(token)
    assert isinstance(result, StsError), result
    assert result.code in CODES, result
    assert token not in result.message or len(token) < 8


_times = st.one_of(
    st.integers(int(NOW) - 10**6, int(NOW) + 10**6),
    st.sampled_from([int(NOW), int(NOW) + 3600, int(NOW) - 60]),
    _json,
)
_tag_maps = st.dictionaries(
    st.text(max_size=140) | st.sampled_from(["team", "aws:x", "Team", ""]),
    st.lists(st.text(max_size=260), min_size=0, max_size=2) | _json,
    max_size=4,
)


def _mostly(good: object, other: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``good`` four times in five, so most tokens get past one claim to the next."""
    return st.one_of(st.just(good), st.just(good), st.just(good), st.just(good), other)


_claims = st.fixed_dictionaries(
    {
        "iss": _mostly(URL, _json),
        "aud": _mostly(CLIENT, st.sampled_from([[CLIENT, "other"], ["other"]]) | _json),
        "sub": _mostly("user-1", st.text(min_size=0, max_size=300) | _json),
        "iat": _mostly(int(NOW) - 5, _times),
        "exp": _mostly(int(NOW) + 3600, _times),
    },
    optional={
        "nbf": _times,
        "azp": st.sampled_from([CLIENT, "other"]) | _json,
        "jti": st.text(max_size=10) | _json,
        "amr": _json,
        TAGS: st.fixed_dictionaries(
            {}, optional={"principal_tags": _tag_maps | _json, "transitive_tag_keys": _json}
        )
        | _json,
        "https://aws.amazon.com/source_identity": st.text(max_size=70) | _json,
        "email": _json,
    },
)


def _sound(**extra: object) -> dict[str, object]:
    """Claims that pass every rule, plus ``extra``."""
    return {"iss": URL, "aud": CLIENT, "sub": "u", "iat": int(NOW), "exp": int(NOW) + 3600, **extra}


@given(_claims)
@settings(max_examples=budget(150))
@example(_sound(**{TAGS: {"principal_tags": {"team\nadmin": ["x"], "k" * 129: ["v"]}}}))
@example(_sound(**{TAGS: {"principal_tags": {"team": ["v" * 257]}, "transitive_tag_keys": [1]}}))
def test_validly_signed_claims_give_an_identity_or_a_known_refusal(claims: dict[str, Any]) -> None:
    result = _verify(sign(rsa_key(), claims))
    event("accepted" if isinstance(result, WebIdentity) else result.code)
    if isinstance(result, StsError):
        assert result.code in CODES, result
        return
    assert result.issuer == URL
    assert result.audience == CLIENT or result.audience == claims.get("azp")
    for key, value in result.session_tags.items():
        assert 1 <= len(key) <= 128 and len(value) <= 256
        assert "\n" not in key + value
