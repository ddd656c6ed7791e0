"""Reading the urlencoded forms the broker's pages (and the IdP's auto-post) send.

python-multipart is not a dependency, and none is needed: every form here is
``application/x-www-form-urlencoded`` with a handful of fields. The rule is strict on
purpose: a field sent twice makes the whole form invalid, because "which of the two values
counts" is exactly the ambiguity a parameter-pollution attack relies on (one layer reads
the first, another the last).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FIELDS = 100
"""Our forms have fewer than ten fields; more is not ours and is not worth parsing."""


async def read_form(request: Request, max_bytes: int) -> dict[str, str] | None:
    """The form's fields, each exactly once; None when it is too large, repeats a field,
    has too many fields or is not ASCII (urlencoding leaves nothing else)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return None
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            return None
        form[key] = value
    return form
