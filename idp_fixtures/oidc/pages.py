"""The two HTML pages a browser sees: the login picker and the error page.

Inline string templates (no template engine dependency) with every value escaped. Kept
tiny and accessible: real headings and labels, buttons that say who you sign in as, an
``role="alert"`` message, so browser-driven tests can find elements by their text. Button
texts and field names are a contract (tests and ``tests/browser/flows.py`` use them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from idp_fixtures.oidc.directory import User

STYLE = (
    ":root{color-scheme:light dark;--bg:#f3f6f5;--surface:#fff;--text:#1b2430;--muted:#5b6675;"
    "--line:#d9dee5;--accent:#0f766e;--accent-text:#fff;--danger:#b42318;--danger-soft:#fdecea}"
    "@media(prefers-color-scheme:dark){:root{--bg:#0f1515;--surface:#172020;--text:#e6ebf1;"
    "--muted:#9aa6b4;--line:#2a3a3a;--accent:#5eead4;--accent-text:#0b1220;--danger:#ff7b72;"
    "--danger-soft:#3a1d1d}}"
    "*{box-sizing:border-box}"
    "body{margin:0;min-height:100vh;display:flex;flex-direction:column;background:var(--bg);"
    "color:var(--text);font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    ".bar{padding:.75rem 1.25rem;background:var(--surface);border-bottom:1px solid var(--line);"
    "font-weight:700;white-space:nowrap}.bar span{color:var(--accent)}"
    "main{width:100%;max-width:28rem;margin:2rem auto;padding:0 1rem}"
    ".card{background:var(--surface);border:1px solid var(--line);border-radius:.6rem;"
    "padding:1.25rem 1.5rem;box-shadow:0 1px 2px #0000000d;overflow-wrap:anywhere}"
    "h1{font-size:1.4rem;margin:0 0 .25rem}"
    ".issuer{margin:0 0 1rem;color:var(--muted);overflow-wrap:anywhere;"
    "font:.8rem/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
    "p{margin:.5rem 0}.lead{color:var(--muted)}"
    "fieldset{border:0;padding:0;margin:1rem 0 0;min-width:0}"
    "legend,label{display:block;padding:0;font-size:.9rem;font-weight:600;color:var(--muted)}"
    "label{margin:1.25rem 0 .35rem}"
    "button{display:block;width:100%;margin:.5rem 0;padding:.65rem 1rem;font:inherit;"
    "font-weight:600;text-align:left;overflow-wrap:anywhere;cursor:pointer;color:var(--text);"
    "background:var(--surface);border:1px solid var(--line);border-radius:.45rem}"
    "button:hover{border-color:var(--accent)}"
    "button.primary{text-align:center;background:var(--accent);border-color:var(--accent);"
    "color:var(--accent-text)}"
    "input{font:inherit;width:100%;padding:.5rem .6rem;border:1px solid var(--line);"
    "border-radius:.45rem;background:var(--bg);color:var(--text)}"
    ":focus-visible{outline:3px solid #ff9f1c;outline-offset:2px}"
    "code{overflow-wrap:anywhere}"
    "[role=alert]{border-left:4px solid var(--danger);background:var(--danger-soft);"
    "padding:.5rem 1rem;border-radius:.35rem}"
    ".note{text-align:center;color:var(--muted);font-size:.8rem;margin:1rem 0}"
)
"""One small stylesheet for both fixture IdPs (the SAML pages use it too): the broker's
look, in another accent colour, so a person sees they have left the broker for the IdP.
Served in a ``<style>`` element: the pages' CSP allows inline styles and nothing else."""

DEMO_NOTE = "A test identity provider: it signs in whoever you pick. Never use it for real."


def document(title: str, body: str) -> str:
    """A whole page: the "Demo identity provider" bar, ``body`` in a card, the note."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        '<body><header class="bar"><span aria-hidden="true">\u25c7</span> '
        "Demo identity provider</header>"
        f'<main><div class="card">{body}</div><p class="note">{escape(DEMO_NOTE)}</p></main>'
        "</body></html>\n"
    )


def heading(title: str, issuer: str) -> str:
    """The card's title, with the issuer (long URLs) small and wrapping under it."""
    return f'<h1>{escape(title)}</h1><p class="issuer">{escape(issuer)}</p>'


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
        f"{heading('Sign in', issuer)}"
        f'<p class="lead">Application <strong>{escape(client_id)}</strong> asks who you are.</p>'
        f'{notice}<form method="post" action="{action}"><fieldset><legend>Configured users'
        f"</legend>{hidden}{buttons}</fieldset></form>"
        f'<form method="post" action="{action}">{hidden}'
        '<label for="subject">Or type a subject</label>'
        f'<input id="subject" name="sub" autocomplete="username" required>'
        f'<button type="submit" class="primary">Sign in</button></form>'
    )
    return document("Sign in · Demo identity provider", body)


def error_page(error: str, description: str) -> str:
    """Shown when the request cannot be redirected back (unknown client or redirect_uri)."""
    body = (
        "<h1>Sign-in request refused</h1>"
        f'<p role="alert"><code>{escape(error)}</code>: {escape(description)}</p>'
    )
    return document("Sign-in request refused · Demo identity provider", body)
