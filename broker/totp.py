"""RFC 6238 time-based one-time passwords, as virtual MFA devices produce them.

Verification returns the time step that matched so the caller can record (device, step)
in the Store and refuse the same code twice: AWS accepts an MFA code once per device.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1
"""Steps accepted either side of now: covers a phone clock 30 s off, as AWS does."""


def decode_secret(secret_b32: str) -> bytes:
    """Decode a base32 seed the way authenticator apps accept it (spaces, no padding, any case)."""
    cleaned = secret_b32.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def totp_at(secret: bytes, step: int) -> str:
    """The code for one 30-second step (RFC 4226 dynamic truncation, HMAC-SHA1)."""
    digest = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def totp_now(secret: bytes, now: float) -> str:
    """The code an authenticator shows at ``now``."""
    return totp_at(secret, int(now // STEP_SECONDS))


def matching_step(secret: bytes, code: str, now: float) -> int | None:
    """The time step within the window whose code equals ``code``, or None.

    Every candidate is compared in constant time so timing does not reveal how close a
    guess came.
    """
    current = int(now // STEP_SECONDS)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp_at(secret, step), code) and found is None:
            found = step
    return found
