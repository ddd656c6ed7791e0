"""The three HTML pages of the SAML IdP: login picker, auto-POST form, error.

Inline string templates with every value escaped. The auto-POST page is what a real IdP
returns after sign-in: a form to the SP's ACS with ``SAMLResponse`` and ``RelayState``,
submitted by a nonce'd script (and by a visible button without JavaScript), so a
plain HTTP client can read the form and POST it as a browser would.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from idp_fixtures.oidc.pages import document, heading
from idp_fixtures.saml.directory import SamlUser


def login_page(
    *,
    idp_entity_id: str,
    sp_entity_id: str,
    handle: str,
    users: Iterable[SamlUser],
    alert: str = "",
) -> str:
    """One button per configured user; the form carries only the opaque ``handle`` of the
    sign-in parked on the server (so the page cannot be edited to change the ACS)."""
    buttons = "".join(
        f'<button type="submit" name="user" value="{escape(u.username)}">'
        f"Sign in as {escape(u.display_name or u.username)}"
        f"{f' ({escape(u.email)})' if u.email else ''}</button>"
        for u in users
    )
    notice = f'<p role="alert">{escape(alert)}</p>' if alert else ""
    body = (
        f"{heading('Sign in', idp_entity_id)}"
        f'<p class="lead">Service provider <strong class="sp">{escape(sp_entity_id)}</strong>'
        f" asks who you are.</p>{notice}"
        '<form method="post" action="login"><fieldset><legend>Configured users</legend>'
        f'<input type="hidden" name="handle" value="{escape(handle)}">{buttons}</fieldset></form>'
    )
    return document("Sign in · Demo identity provider", body)


def post_form_page(*, acs_url: str, saml_response: str, relay_state: str | None, nonce: str) -> str:
    """The auto-submitting HTTP-POST binding form to ``acs_url``."""
    relay = (
        f'<input type="hidden" name="RelayState" value="{escape(relay_state)}">'
        if relay_state is not None
        else ""
    )
    body = (
        "<h1>Signing you in</h1>"
        f'<form method="post" action="{escape(acs_url)}" id="saml-post">'
        f'<input type="hidden" name="SAMLResponse" value="{escape(saml_response)}">{relay}'
        '<button type="submit" class="primary">Continue</button></form>'
        f'<script nonce="{escape(nonce)}">document.getElementById("saml-post").submit()</script>'
    )
    return document("Signing you in · Demo identity provider", body)


def error_page(message: str) -> str:
    """Shown when a request cannot be answered (unknown SP, unregistered ACS, bad XML)."""
    body = f'<h1>Sign-in request refused</h1><p role="alert">{escape(message)}</p>'
    return document("Sign-in request refused · Demo identity provider", body)
