"""Identifier shapes and RFC 6238 codes."""

from __future__ import annotations

import base64
import os
import re
import uuid

import pytest

from broker.ids import (
    account_of_key,
    new_access_key_id,
    new_secret_access_key,
    request_id,
    unique_id,
)
from broker.totp import decode_secret, matching_step, totp_at, totp_now


@pytest.mark.parametrize(
    "account", ["000000000000", "111111111111", "123456789012", "999999999999"]
)
def test_temporary_key_encodes_its_account(account: str) -> None:
    key = new_access_key_id(account)
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", key)
    assert account_of_key(key) == account


def test_account_decoding_matches_aws_published_example() -> None:
    # The worked example from the public write-up of AWS's key ID encoding.
    assert account_of_key("ASIAY34FZKBOKMUTVV7A") == "609629065308"


@pytest.mark.parametrize("key", ["", "ASIA", "ASIA!!!!!!!!!!!!!!!!", "1234" + "A" * 16])
def test_malformed_key_ids_have_no_account(key: str) -> None:
    assert account_of_key(key) is None


def test_secret_shape() -> None:
    secret = new_secret_access_key()
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", secret)


def test_unique_ids_are_stable_and_distinct() -> None:
    assert unique_id("AROA", "1", "/", "Dev") == unique_id("AROA", "1", "/", "Dev")
    assert unique_id("AROA", "1", "/", "Dev") != unique_id("AROA", "1", "/x/", "Dev")
    assert re.fullmatch(r"AROA[A-Z2-7]{17}", unique_id("AROA", "1", "/", "Dev"))


# RFC 6238 Appendix B test vectors (SHA-1, 8 digits there; we use the low 6 digits).
RFC_SECRET = b"12345678901234567890"


@pytest.mark.parametrize(
    ("when", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_rfc6238_vectors(when: int, eight_digits: str) -> None:
    assert totp_now(RFC_SECRET, when) == eight_digits[-6:]


def test_window_accepts_one_step_either_side_only() -> None:
    now = 1_800_000_000.0
    step = int(now // 30)
    assert matching_step(RFC_SECRET, totp_at(RFC_SECRET, step - 1), now) == step - 1
    assert matching_step(RFC_SECRET, totp_at(RFC_SECRET, step + 1), now) == step + 1
    assert matching_step(RFC_SECRET, totp_at(RFC_SECRET, step - 2), now) is None
    assert (
        matching_step(RFC_SECRET, "000000" if totp_at(RFC_SECRET, step) != "000000" else "1", now)
        is None
    )


def test_decode_secret_is_lenient_like_authenticator_apps() -> None:
    assert decode_secret("gezd gnbv gy3t qojq") == decode_secret("GEZDGNBVGY3TQOJQ")


@pytest.mark.parametrize("account", ["000000000000", "609629065308", "999999999999"])
def test_key_id_spells_the_documented_bytes_in_base32(
    account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table-driven encoding is ``b32encode`` of (account << 7 | 7 random bits) + 4 bytes."""
    for random in (b"\x00" * 5, b"\xff" * 5, bytes.fromhex("a35c0f9e71")):
        monkeypatch.setattr(os, "urandom", lambda n, r=random: r[:n])
        head = (int(account) << 7 | random[0] >> 1).to_bytes(6, "big")
        expected = "ASIA" + base64.b32encode(head + random[1:]).decode()
        assert new_access_key_id(account) == expected
        assert account_of_key(expected) == account


def test_request_ids_are_version_4_uuids_with_the_random_bits_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _ in range(200):
        value = request_id()
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    for random in (b"\x00" * 16, b"\xff" * 16, bytes(range(16))):
        monkeypatch.setattr(os, "urandom", lambda n, r=random: r[:n])
        expected = uuid.UUID(bytes=random, version=4)  # sets exactly the version and variant
        assert request_id() == str(expected)
