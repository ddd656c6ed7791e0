"""PKCE (RFC 7636, S256 only): the proof that ties a code to the process that asked for it.

Shared by the CLI (which makes a verifier and sends its challenge) and the broker (which
checks the verifier at redemption). Kept free of heavy imports: ``credential-process``
runs on every AWS CLI call and must start fast.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_verifier() -> str:
    """A ``code_verifier``: 32 random bytes, base64url (43 characters, RFC 7636 4.1)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def challenge_of(verifier: str) -> str:
    """The S256 ``code_challenge`` of a ``code_verifier`` (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
