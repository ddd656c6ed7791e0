"""Identifiers shaped like AWS's: access key IDs, secrets, unique principal IDs, request IDs.

Temporary access key IDs carry their account the way real AWS keys do (bits of characters
5-12, see Aidan Steele's write-up of the encoding), so ``GetAccessKeyInfo`` answers for any
key the broker minted on any node without a lookup.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

_ACCOUNT_MASK = 0x7FFFFFFFFF80
"""Bits of the first six decoded bytes that hold the account ID (shifted left by 7)."""


_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = tuple(a + b for a in _B32_ALPHABET for b in _B32_ALPHABET)
"""Every 10-bit value as its two base32 characters (RFC 4648 alphabet), indexed by value."""


def new_access_key_id(account: str, prefix: str = "ASIA") -> str:
    """A fresh ``ASIA...`` ID: prefix + 16 base32 chars (10 bytes) that encode the account."""
    # One read of the OS CSPRNG for all 39 random bits (7 + 32): the top 7 bits of the
    # first byte are as uniform as ``secrets.randbits(7)``, without a second syscall. The
    # 80 bits are (account << 7 | those 7 bits) << 32 | the other 32, exactly what
    # ``base64.b32encode`` of the 10 bytes spells; eight table lookups cost half its time
    # (it is pure Python), and every role session pays for one.
    random = int.from_bytes(os.urandom(5), "big")
    v = int(account) << 39 | random >> 1 & 0x7F00000000 | random & 0xFFFFFFFF
    p = _B32_PAIRS
    return (
        f"{prefix}{p[v >> 70]}{p[v >> 60 & 1023]}{p[v >> 50 & 1023]}{p[v >> 40 & 1023]}"
        f"{p[v >> 30 & 1023]}{p[v >> 20 & 1023]}{p[v >> 10 & 1023]}{p[v & 1023]}"
    )


def account_of_key(access_key_id: str) -> str | None:
    """The account encoded in a key ID, or None when the ID is not of AWS's shape."""
    if len(access_key_id) != 20 or not access_key_id[:4].isalpha():
        return None
    try:
        raw = base64.b32decode(access_key_id[4:])
    except ValueError:
        return None
    account = (int.from_bytes(raw[:6], "big") & _ACCOUNT_MASK) >> 7
    return f"{account:012d}" if account < 10**12 else None


def new_secret_access_key() -> str:
    """40 characters of the base64 alphabet, like AWS secrets (30 random bytes)."""
    return base64.b64encode(secrets.token_bytes(30)).decode()


def unique_id(prefix: str, *parts: str) -> str:
    """A stable AWS-style unique ID (``AROA...``, ``AIDA...``) derived from the principal's name.

    AWS assigns these randomly at creation; the broker has no creation step, so it derives
    them from account and name: the same on every node and across restarts, and different
    for a role deleted and recreated under another path.
    """
    digest = hashlib.sha256("\x00".join((prefix, *parts)).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:17]


_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""A random hex digit with its top two bits set to RFC 4122's variant ``10``."""


def request_id() -> str:
    """AWS's request ID form: a random (version 4, RFC 4122 variant) UUID.

    The same bits and text as ``str(uuid.uuid4())``, set directly on the hex text (version
    digit ``4``, variant digit from ``_UUID_VARIANT``): every request pays for one, and the
    ``UUID`` object costs about four times as much.
    """
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
