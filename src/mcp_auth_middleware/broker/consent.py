"""The consent page and what binds a sign-in to one browser (MCP Security Best Practices,
"Confused Deputy Problem": a proxy with one client at the provider gets consent per client).

The page says which client asks (its name as it wrote it, escaped; the host it redirects to; its
metadata URL or id) for which scopes, with Approve and Deny buttons in one form: no script, no
framing (`frame-ancestors 'none'`), a CSP that loads nothing. The browser is known by a
`__Host-` cookie (Secure, HttpOnly, Path=/, no Domain: set by this origin only), and the form
carries a CSRF token derived from that cookie and the sign-in, so a form posted by another site,
or a link that lands another user's browser on it, decides nothing."""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

__all__ = ["BROWSER_COOKIE", "PAGE_HEADERS", "BrowserBinding", "consent_page"]

BROWSER_COOKIE = "__Host-mcp-broker-browser"

#: Sent with every page the broker shows a browser. No `form-action`: the consent form's answer
#: is a redirect to the provider or back to the client, which browsers check against it too.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # Not no-referrer: with it a browser sends `Origin: null` even on the form's own same-origin
    # POST, which the origin check must refuse (seen in Chromium). Across origins, no referrer.
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class BrowserBinding:
    """`BrowserBinding(secret)`: the browser's cookie, and CSRF tokens tied to it and a sign-in."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the browser-binding secret has at least 32 characters")
        self._key = hashlib.sha256(b"mcp-oauth-middleware consent\x00" + secret.encode()).digest()

    @staticmethod
    def new_browser() -> tuple[str, str]:
        """A new browser id and its `Set-Cookie` value (a session cookie: gone with the browser)."""
        browser = secrets.token_urlsafe(32)
        return browser, f"{BROWSER_COOKIE}={browser}; Secure; HttpOnly; SameSite=Lax; Path=/"

    @staticmethod
    def browser_of(cookie_header: str | None) -> str | None:
        """The browser id from a `Cookie` header; None when absent or sent twice (a look-alike
        set by a sibling domain cannot be told from ours, so two is none)."""
        found = [
            value
            for name, _, value in (part.strip().partition("=") for part in (cookie_header or "").split(";"))
            if name == BROWSER_COOKIE
        ]
        return found[0] if len(found) == 1 and found[0] else None

    def csrf_token(self, browser: str, sign_in: str) -> str:
        return hmac.new(self._key, f"{browser}\x00{sign_in}".encode(), hashlib.sha256).hexdigest()

    def form_is_genuine(self, headers: Mapping[str, str], form: Mapping[str, str], browser: str | None,
                        sign_in: str, origin: str) -> bool:  # fmt: skip
        """A consent form this browser was shown, posted from this origin: the CSRF token matches
        this browser's cookie and this sign-in, and `Origin` (or `Sec-Fetch-Site`) says so."""
        if browser is None:
            return False
        sent_from = headers.get("origin")
        site = headers.get("sec-fetch-site")
        if sent_from is not None and sent_from != origin:
            return False
        if sent_from is None and site not in (None, "same-origin"):
            return False
        return hmac.compare_digest(form.get("csrf", ""), self.csrf_token(browser, sign_in))


def consent_page(
    *, client_name: str | None, client_id: str, redirect_uri: str, scopes: Sequence[str], csrf: str, action: str
) -> str:
    """The page: everything the client wrote escaped; works without JavaScript."""
    name = html.escape(client_name or "An application with no name")
    host = html.escape(urlsplit(redirect_uri).hostname or redirect_uri)
    shown_id = html.escape(client_id)
    items = "".join(f"<li><code>{html.escape(scope)}</code></li>" for scope in scopes) or "<li>no scope</li>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access?</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Allow <span id="client-name">{name}</span> to act for you?</h1>
<p>It sends you back to <strong id="redirect-host">{host}</strong>. Its id: <code id="client-id">{shown_id}</code></p>
<p>It asks for:</p><ul id="scopes">{items}</ul>
<form method="post" action="{html.escape(action)}">
<input type="hidden" name="csrf" value="{html.escape(csrf)}">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>
"""
