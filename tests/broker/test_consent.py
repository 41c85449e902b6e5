"""The consent page and the browser binding, as a hostile client would meet them: markup in
everything a client writes, framing, a form posted without its token, with another browser's or
another sign-in's, from another origin, a look-alike cookie sent beside ours; and in Debian's
Chromium, which found that `Referrer-Policy: no-referrer` makes a same-origin form's `Origin`
null."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mcp_auth_middleware.broker.consent import BROWSER_COOKIE, PAGE_HEADERS, BrowserBinding, consent_page
from mcp_auth_middleware.testing import free_port, serve

from ..processes import in_chromium

BINDING = BrowserBinding("c" * 43)
ORIGIN = "https://broker.example.com"
MARKUP = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def page(**changes: object) -> str:
    options: dict[str, object] = {
        "client_name": MARKUP,
        "client_id": 'https://evil.example/client.json"><script>alert(3)</script>',
        "redirect_uri": "http://127.0.0.1:33418/callback",
        "scopes": ["mcp", "<b>admin</b>"],
        "csrf": BINDING.csrf_token("browser-1", "sign-in-1"),
        "action": "/consent/sign-in-1",
    }
    return consent_page(**(options | changes))  # type: ignore[arg-type]


def test_everything_a_client_wrote_is_escaped_and_the_page_needs_no_script() -> None:
    shown = page()
    assert "<script" not in shown and "<img" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "&lt;b&gt;admin&lt;/b&gt;" in shown and '<strong id="redirect-host">127.0.0.1</strong>' in shown
    assert shown.count("<form") == 1 and 'value="approve"' in shown and 'value="deny"' in shown
    assert "An application with no name" in page(client_name=None)


def test_the_page_cannot_be_framed_and_loads_nothing() -> None:
    policy = PAGE_HEADERS["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert PAGE_HEADERS["x-frame-options"] == "DENY" and PAGE_HEADERS["cache-control"] == "no-store"


def test_the_browser_cookie_is_host_only_and_secure() -> None:
    browser, cookie = BrowserBinding.new_browser()
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0] == f"{BROWSER_COOKIE}={browser}" and BROWSER_COOKIE.startswith("__Host-")
    assert {"Secure", "HttpOnly", "Path=/", "SameSite=Lax"} <= set(attributes)
    assert not any(a.lower().startswith(("domain", "max-age", "expires")) for a in attributes)
    assert BrowserBinding.new_browser()[0] != browser


@pytest.mark.parametrize(
    ("header", "browser"),
    [
        (f"a=1; {BROWSER_COOKIE}=b1; z=2", "b1"),
        (None, None),
        ("", None),
        (f"{BROWSER_COOKIE}=", None),
        (f"{BROWSER_COOKIE}=b1; {BROWSER_COOKIE}=b2", None),  # a look-alike beside ours: none
        ("__host-mcp-broker-browser=b1", None),  # another name
    ],
)
def test_the_browser_is_read_from_its_cookie_only(header: str | None, browser: str | None) -> None:
    assert BrowserBinding.browser_of(header) == browser


@pytest.mark.parametrize(
    ("headers", "form", "browser", "sign_in", "genuine"),
    [
        ({"origin": ORIGIN}, {"csrf": BINDING.csrf_token("b1", "s1")}, "b1", "s1", True),
        ({"sec-fetch-site": "same-origin"}, {"csrf": BINDING.csrf_token("b1", "s1")}, "b1", "s1", True),
        ({}, {"csrf": BINDING.csrf_token("b1", "s1")}, "b1", "s1", True),  # an old browser: the token decides
        ({"origin": ORIGIN}, {}, "b1", "s1", False),  # no token
        ({"origin": ORIGIN}, {"csrf": BINDING.csrf_token("b2", "s1")}, "b1", "s1", False),  # another browser's
        ({"origin": ORIGIN}, {"csrf": BINDING.csrf_token("b1", "s2")}, "b1", "s1", False),  # another sign-in's
        ({"origin": ORIGIN}, {"csrf": BINDING.csrf_token("b1", "s1")}, None, "s1", False),  # no cookie
        ({"origin": "https://evil.example"}, {"csrf": BINDING.csrf_token("b1", "s1")}, "b1", "s1", False),
        ({"origin": "null"}, {"csrf": BINDING.csrf_token("b1", "s1")}, "b1", "s1", False),
        ({"sec-fetch-site": "cross-site"}, {"csrf": BINDING.csrf_token("b1", "s1")}, "b1", "s1", False),
        ({"origin": ORIGIN}, {"csrf": BrowserBinding("d" * 43).csrf_token("b1", "s1")}, "b1", "s1", False),
    ],
)
def test_only_this_browsers_form_from_this_origin_decides(
    headers: dict[str, str], form: dict[str, str], browser: str | None, sign_in: str, genuine: bool
) -> None:
    assert BINDING.form_is_genuine(headers, form, browser, sign_in, ORIGIN) is genuine


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 characters"):
        BrowserBinding("short")


@pytest.mark.end_to_end
@pytest.mark.interop
def test_in_a_real_browser() -> None:
    """Debian's Chromium: the markup a client wrote is shown as text and runs nothing; Approve
    works without our page running any script and posts a genuine form (cookie and token); a
    page of another origin posting the form itself, or framing the page, gets nothing."""
    port = free_port()
    base, attacker = f"http://localhost:{port}", f"http://attacker.test:{port}"

    async def show(request: Request) -> Response:
        browser = BrowserBinding.browser_of(request.headers.get("cookie"))
        cookie = None
        if browser is None:
            browser, cookie = BrowserBinding.new_browser()
        html = page(csrf=BINDING.csrf_token(browser, "sign-in-1"), action="/consent")
        response = HTMLResponse(html, headers=PAGE_HEADERS)
        if cookie:
            response.headers.append("set-cookie", cookie)
        return response

    async def decide(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        browser = BrowserBinding.browser_of(request.headers.get("cookie"))
        genuine = BINDING.form_is_genuine(request.headers, form, browser, "sign-in-1", base)
        return JSONResponse({"genuine": genuine, "decision": form.get("decision"), "cookie": browser is not None})

    async def attack(request: Request) -> Response:
        return HTMLResponse(
            f'<form method="post" action="{base}/consent"><input name="csrf" value="guessed">'
            '<input name="decision" value="approve"></form><script>document.forms[0].submit()</script>'
        )

    async def frame(request: Request) -> Response:
        return HTMLResponse(f'<iframe src="{base}/consent" width="600" height="400"></iframe>')

    app = Starlette(
        routes=[
            Route("/consent", show),
            Route("/consent", decide, methods=["POST"]),
            Route("/attack", attack),
            Route("/frame", frame),
        ]
    )
    with serve(app, port=port):
        seen = in_chromium("consent.mjs", base, attacker)
    assert seen["shown"] == {
        "name": MARKUP,
        "id": 'https://evil.example/client.json"><script>alert(3)</script>',
        "scopes": ["mcp", "<b>admin</b>"],
    }
    assert seen["dialogs"] == []  # no script of the client's ran
    assert seen["approved"] == {"genuine": True, "decision": "approve", "cookie": True}
    # SameSite=Lax keeps the cookie off another site's POST; the token and Origin refuse it too.
    assert seen["crossSite"]["genuine"] is False
    assert seen["framedShown"] is False
