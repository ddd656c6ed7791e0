"""The browser side of the broker: sessions, login binding, CSRF, headers, safe redirects.

Pages (templates, routes) build on these; none of them holds page logic.
"""

from __future__ import annotations

from broker.web.cookies import CookiePolicy, InsecureWebOriginError, cookie_key
from broker.web.login import LoginBinding, LoginBindingError, LoginKind, PendingLogin
from broker.web.redirects import safe_return_to
from broker.web.security import (
    CSRF_FIELD,
    CsrfMiddleware,
    SecurityHeadersMiddleware,
    content_security_policy,
    csrf_middleware,
    form_middleware,
    headers_middleware,
    web_middleware,
)
from broker.web.sessions import BrowserSessions, Session, SessionExpiredError

__all__ = [
    "CSRF_FIELD",
    "BrowserSessions",
    "CookiePolicy",
    "CsrfMiddleware",
    "InsecureWebOriginError",
    "LoginBinding",
    "LoginBindingError",
    "LoginKind",
    "PendingLogin",
    "SecurityHeadersMiddleware",
    "Session",
    "SessionExpiredError",
    "content_security_policy",
    "cookie_key",
    "csrf_middleware",
    "form_middleware",
    "headers_middleware",
    "safe_return_to",
    "web_middleware",
]
