"""The two HTML pages a browser sees: the login picker and the error page.

Inline string templates (no template engine dependency) with every value escaped. Kept
tiny and accessible: real headings and labels, buttons that say who you sign in as, an
``role="alert"`` message, so browser-driven tests can find elements by their text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from idp_fixtures.oidc.directory import User

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
    "button{display:block;width:100%;margin:.4rem 0;padding:.6rem;font-size:1rem}"
    "input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}"
    "[role=alert]{border:2px solid #b00;padding:.5rem}"
)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _hidden(params: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items()
    )


def login_page(
    *,
    issuer: str,
    client_id: str,
    params: Mapping[str, str],
    users: Iterable[User],
    alert: str = "",
) -> str:
    """The user picker: one button per configured user, plus a free-text subject.

    ``params`` are the validated authorization parameters, posted back as hidden fields
    and validated again on POST (the page is not trusted to carry them intact).
    """
    hidden = _hidden(params)
    action = escape(f"{issuer}/authorize")
    buttons = "".join(
        f'<button type="submit" name="sub" value="{escape(u.sub)}">'
        f"Sign in as {escape(u.name or u.sub)}"
        f"{f' ({escape(u.email)})' if u.email else ''}</button>"
        for u in users
    )
    notice = f'<p role="alert">{escape(alert)}</p>' if alert else ""
    body = (
        f"<h1>Sign in to {escape(issuer)}</h1>"
        f"<p>Application <strong>{escape(client_id)}</strong> asks who you are.</p>{notice}"
        f'<form method="post" action="{action}"><fieldset><legend>Configured users</legend>'
        f"{hidden}{buttons}</fieldset></form>"
        f'<form method="post" action="{action}">{hidden}'
        '<label for="subject">Or type a subject</label>'
        f'<input id="subject" name="sub" autocomplete="username" required>'
        f'<button type="submit">Sign in</button></form>'
    )
    return _document(f"Sign in - {issuer}", body)


def error_page(error: str, description: str) -> str:
    """Shown when the request cannot be redirected back (unknown client or redirect_uri)."""
    body = (
        "<h1>Sign-in request refused</h1>"
        f'<p role="alert"><code>{escape(error)}</code>: {escape(description)}</p>'
    )
    return _document("Sign-in request refused", body)
