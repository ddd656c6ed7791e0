"""The one refusal the policy engine raises: a policy document AWS would not accept.

It lives apart from the parser so that every module that validates part of a document
(conditions, principals, variables) raises the same type without importing the parser.
The STS engine turns it into ``MalformedPolicyDocument``; ``reason`` is the AWS-like text.
"""

from __future__ import annotations

_SHOW_LIMIT = 80


class MalformedPolicyError(Exception):
    """A policy document that is not valid IAM policy grammar; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: object) -> str:
    """Quote a fragment of the caller's own document for a reason, bounded in length.

    Policies are the caller's data (not secrets), but a session policy is attacker-sized
    input, so an echoed fragment is cut to keep error messages small.
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _SHOW_LIMIT:
        text = text[:_SHOW_LIMIT] + "..."
    return text
