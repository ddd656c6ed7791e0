"""Session tokens: round trip, compactness, and every way a forged token must fail."""

from __future__ import annotations

import base64
import json

import pytest

from broker.identity import SessionClaims, TokenInvalidError, TokenSealer
from broker.identity import session_tokens as tokens

KEY_A = ("k2026a", b"A" * 32)
KEY_B = ("k2026b", b"B" * 32)


def _claims(**overrides: object) -> SessionClaims:
    values: dict[str, object] = {
        "access_key_id": "ASIABTXV5AHDXZLCH5VC",
        "account": "222222222222",
        "kind": "assumed-role",
        "arn": "arn:aws:sts::222222222222:assumed-role/UpdateApp/alice",
        "user_id": "AROAHXH5WXBI45UGN52YG:alice",
        "principal_name": "UpdateApp",
        "principal_path": "/",
        "issued_at": 1_800_000_000,
        "expires_at": 1_800_003_600,
        "source_arn": "arn:aws:iam::111111111111:user/alice",
    }
    values.update(overrides)
    return SessionClaims(**values)  # type: ignore[arg-type]


def _every_field(**overrides: object) -> SessionClaims:
    """Claims with every optional field set (each test names its own tags)."""
    values: dict[str, object] = {
        "source_identity": "alice@example.com",
        "session_policy": '{"Version":"2012-10-17","Statement":[]}',
        "policy_arns": ("arn:aws:iam::aws:policy/ReadOnly",),
        "mfa": True,
        "mfa_authenticated_at": 1_800_000_000,
        "chain_depth": 2,
    }
    return _claims(**{**values, **overrides})


def _unb64(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_keeps_every_field() -> None:
    sealer = TokenSealer([KEY_A])
    claims = _every_field(tags={"team": "platform", "Project": "x"}, transitive_tag_keys=("team",))
    token, secret = sealer.seal(claims)
    opened, opened_secret = sealer.open(token)
    assert opened == claims
    assert opened_secret == secret
    assert len(secret) == 40


def test_secret_differs_per_token() -> None:
    sealer = TokenSealer([KEY_A])
    _, first = sealer.seal(_claims())
    _, second = sealer.seal(_claims())
    assert first != second


def test_plain_session_token_is_compact_and_not_deflated() -> None:
    sealer = TokenSealer([KEY_A])
    token, secret = sealer.seal(_claims())
    # Small claims are sealed as they are: deflate would cost every mint and every signed
    # call more than the ~100 bytes it saves (tokens.py says why).
    assert _unb64(token)[0] == 0x02, "version 2, no zlib flag"
    assert len(token) < 450, len(token)
    assert sealer.open(token) == (_claims(), secret)


def test_rotation_old_key_still_opens_new_key_seals() -> None:
    old = TokenSealer([KEY_A])
    token_old, _ = old.seal(_claims())
    rotated = TokenSealer([KEY_B, KEY_A])
    assert rotated.open(token_old)[0] == _claims()
    token_new, _ = rotated.seal(_claims())
    with pytest.raises(TokenInvalidError):
        old.open(token_new)  # sealed with KEY_B, unknown to the old node


def test_key_removed_after_rotation_is_refused() -> None:
    token, _ = TokenSealer([KEY_A]).seal(_claims())
    with pytest.raises(TokenInvalidError, match="key this broker does not hold"):
        TokenSealer([KEY_B]).open(token)


def test_same_key_id_other_secret_is_refused() -> None:
    token, _ = TokenSealer([KEY_A]).seal(_claims())
    with pytest.raises(TokenInvalidError, match="authentication tag"):
        TokenSealer([("k2026a", b"Z" * 32)]).open(token)


@pytest.mark.parametrize("position", [0, 3, 10, 20, 40, -1])
def test_any_flipped_byte_is_refused(position: int) -> None:
    sealer = TokenSealer([KEY_A])
    token, _ = sealer.seal(_claims())
    raw = _unb64(token)
    raw[position] ^= 0x01
    with pytest.raises(TokenInvalidError):
        sealer.open(_b64(bytes(raw)))


def test_forged_plaintext_claims_are_refused() -> None:
    """An attacker who knows the format but not the key cannot mint an admin session."""
    sealer = TokenSealer([KEY_A])
    token, _ = sealer.seal(_claims())
    raw = _unb64(token)
    forged = json.dumps({"k": "ASIA", "a": "222222222222", "t": "assumed-role"}).encode()
    with pytest.raises(TokenInvalidError):
        sealer.open(_b64(bytes(raw[:17]) + forged + bytes(16)))


@pytest.mark.parametrize("token", ["", "x", "!!!not-base64!!!", "A" * 9000, _b64(b"\x01" * 30)])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(TokenInvalidError):
        TokenSealer([KEY_A]).open(token)


def test_truncated_token_is_refused() -> None:
    sealer = TokenSealer([KEY_A])
    token, _ = sealer.seal(_claims())
    with pytest.raises(TokenInvalidError):
        sealer.open(token[:-6])


def test_large_session_policy_is_compressed() -> None:
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": f"s3:GetObject{i}", "Resource": "arn:aws:s3:::b/*"}
                for i in range(25)
            ],
        }
    )
    sealer = TokenSealer([KEY_A])
    token, secret = sealer.seal(_claims(session_policy=policy))
    assert _unb64(token)[0] == 0x82, "version 2 with the zlib flag"
    assert len(token) < len(policy)
    assert sealer.open(token) == (_claims(session_policy=policy), secret)


def test_version_1_tokens_are_refused_even_when_properly_sealed() -> None:
    """Version 1 derived the secret with HMAC-SHA256; opening one now would hand back the
    wrong secret, so it is refused as an unknown format instead (a clear InvalidClientTokenId
    rather than a confusing SignatureDoesNotMatch)."""
    sealer = TokenSealer([KEY_A])
    token, _ = sealer.seal(_claims())
    raw = _unb64(token)
    header = bytes([0x01]) + bytes(raw[1:17])
    payload = sealer._sealing.aead.decrypt(bytes(raw[5:17]), bytes(raw[17:]), bytes(raw[:17]))
    resealed = header + sealer._sealing.aead.encrypt(bytes(raw[5:17]), payload, header)
    with pytest.raises(TokenInvalidError, match="unknown token format"):
        sealer.open(_b64(resealed))


@pytest.mark.parametrize("accelerated", [True, False])
def test_claims_json_is_the_standard_compact_json(
    accelerated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared C encoder writes what json.dumps writes (and the fallback is the same)."""
    if not accelerated:
        monkeypatch.setattr(tokens, "_C_ENCODE", None)
    claims = _every_field(
        tags={"Projekt": 'Ünïcode 日本 "q" \\ \n', "e": "\u2028"},
        transitive_tag_keys=("Projekt",),
        extra={"nested": {"list": [1, 2.5, None, True]}},
    )
    wire = tokens._to_wire(claims)
    assert tokens._compact_json(wire) == json.dumps(wire, separators=(",", ":"), ensure_ascii=False)
    sealer = TokenSealer([KEY_A])
    token, secret = sealer.seal(claims)
    assert sealer.open(token) == (claims, secret)
