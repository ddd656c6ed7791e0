"""The one error type every stage raises: it carries AWS's code, HTTP status and message.

Everything that refuses a request raises :class:`StsError`; the Query API turns it into
AWS's ``ErrorResponse`` XML. Keeping one type means no stage can leak a 500 by raising
something the presenter does not know.
"""

from __future__ import annotations


class StsError(Exception):
    """A refusal with the exact code and status real STS would answer."""

    def __init__(self, code: str, message: str, status: int = 400, *, sender: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender

    def __repr__(self) -> str:
        return f"StsError({self.code!r}, {self.message!r}, {self.status})"


def validation_error(message: str) -> StsError:
    """AWS's generic bad-parameter answer (400 ``ValidationError``)."""
    return StsError("ValidationError", message, 400)


def access_denied(message: str) -> StsError:
    """AWS's authorization refusal (403 ``AccessDenied``)."""
    return StsError("AccessDenied", message, 403)


def invalid_token(message: str) -> StsError:
    """A SAML response or ID token that is not valid and verifiable (400
    ``InvalidIdentityToken``)."""
    return StsError("InvalidIdentityToken", message, 400)


def rejected_claim(message: str) -> StsError:
    """The signature is good but a claim can't be accepted (403 ``IDPRejectedClaim``)."""
    return StsError("IDPRejectedClaim", message, 403)


def communication_error(message: str) -> StsError:
    """The identity provider's keys or metadata can't be had (400 ``IDPCommunicationError``,
    which botocore retries)."""
    return StsError("IDPCommunicationError", message, 400)


STORE_OUTAGE_MESSAGE = (
    "The service is unavailable: the broker cannot reach the state it needs for this request. "
    "Try again shortly."
)
"""What a client is told while the state store is down; where it is goes to the log only."""


def service_unavailable(message: str = STORE_OUTAGE_MESSAGE) -> StsError:
    """The broker cannot serve this request now (503 ``ServiceUnavailable``, a server fault
    that botocore retries): e.g. the state store a one-time value must be checked in is down.
    """
    return StsError("ServiceUnavailable", message, 503, sender=False)


def shortened(text: str, limit: int = 64) -> str:
    """``text`` cut to ``limit`` characters (the last three ``...``), so one message stays
    one line whatever a caller or an identity provider sent."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(text: str, limit: int = 64) -> str:
    """:func:`shortened`, quoted with ``repr`` so control characters cannot forge a log line."""
    return repr(shortened(text, limit))
