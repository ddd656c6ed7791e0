"""The one refusal the policy engine raises: a policy document AWS would not accept.

It lives apart from the parser so that every module that validates part of a document
(conditions, principals, variables) raises the same type without importing the parser.
The STS engine turns it into ``MalformedPolicyDocument``; ``reason`` is the AWS-like text
of the first mistake, as AWS names one. ``problems`` lists every mistake the parser found,
each with its place in the document (``("Statement", 1, "Action", 0)``), so a config file
can point at the line of each wrong element instead of the policy's first line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_SHOW_LIMIT = 80

DocumentPath = tuple[str | int, ...]
"""Keys and list indexes from the document's root to an element; ``()`` is the document."""


@dataclass(frozen=True)
class PolicyProblem:
    """One mistake in a policy document, where it is."""

    path: DocumentPath
    reason: str


class MalformedPolicyError(Exception):
    """A policy document that is not valid IAM policy grammar; ``reason`` says why."""

    def __init__(self, reason: str, path: DocumentPath = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems: tuple[PolicyProblem, ...] = (PolicyProblem(path, reason),)

    @classmethod
    def of(cls, problems: Sequence[PolicyProblem]) -> MalformedPolicyError:
        """One error for several mistakes (in document order); ``reason`` is the first's."""
        error = cls(problems[0].reason, problems[0].path)
        error.problems = tuple(problems)
        return error

    def within(self, *prefix: str | int) -> MalformedPolicyError:
        """The same mistakes, their paths relative to an enclosing element."""
        return MalformedPolicyError.of(
            [PolicyProblem((*prefix, *p.path), p.reason) for p in self.problems]
        )


def show(value: object) -> str:
    """Quote a fragment of the caller's own document for a reason, bounded in length.

    Policies are the caller's data (not secrets), but a session policy is attacker-sized
    input, so an echoed fragment is cut to keep error messages small.
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _SHOW_LIMIT:
        text = text[:_SHOW_LIMIT] + "..."
    return text
