"""A real browser: Debian's headless Chromium (installed by `make test`, never downloaded by a
test tool) signs in from a page on a loopback origin and calls tools, meeting CORS, preflights
and exposed headers as only a browser enforces them; then a page from an origin the resource
does not allow sees its refusal (MCP Streamable HTTP transport, Security Warning)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from mcp_auth_middleware.demo import demo_stack
from mcp_auth_middleware.testing import free_port, serve

from ..processes import BROWSER, in_chromium

pytestmark = [pytest.mark.end_to_end, pytest.mark.interop]


def test_a_browser_page_signs_in_calls_tools_and_reads_every_answer() -> None:
    pages = Starlette(routes=[], debug=False)
    pages.mount("/", StaticFiles(directory=BROWSER / "pages", html=True))
    page_port = free_port()
    with demo_stack(port=free_port(), as_port=free_port()) as stack, serve(pages, port=page_port):
        seen = in_chromium(
            "drive.mjs", f"http://localhost:{page_port}", f"http://page.test:{page_port}", stack.resource
        )
    flow: dict[str, Any] = {step.pop("step"): step for step in seen["flow"]}
    assert "error" not in flow, flow.get("error")

    # The challenge, read by the page through CORS (WWW-Authenticate is exposed).
    assert flow["challenge"]["status"] == 401
    assert flow["challenge"]["challenge"].startswith("Bearer ")
    assert (
        f'resource_metadata="{stack.resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")}"'
        in (flow["challenge"]["challenge"])
    )
    # Metadata and registration from the page's origin.
    assert flow["metadata"] == {"resource": stack.resource, "issuer": stack.issuer}
    assert flow["registered"] == {"status": 201, "has_secret": False}
    # The authorization redirect came back to the page, with its state and the issuer (RFC 9207).
    assert flow["redirected"] == {"state_ok": True, "iss": stack.issuer}
    # The PKCE token request by fetch, then a tool call with the token.
    assert flow["token"] == {"status": 200, "token_type": "Bearer", "scope": "mcp"}
    assert flow["whoami"]["status"] == 200 and '\\"sub\\":\\"demo-user\\"' in flow["whoami"]["body"]
    # The 403 step-up challenge, readable by the page: what it needs to ask for more scope.
    step_up = flow["step-up"]
    assert step_up["status"] == 403
    assert 'error="insufficient_scope"' in step_up["challenge"] and 'scope="mcp notes:delete"' in step_up["challenge"]
    assert step_up["body"]["error"] == "insufficient_scope"

    # A page from an origin the resource does not allow: not a bare network error, the JSON.
    (refused,) = seen["refused"]
    assert refused == {
        "step": "refused",
        "status": 403,
        "body": {
            "error": "forbidden_origin",
            "error_description": "This Origin is not allowed: the server's log names the option that admits it "
            "(allowed_origins)",
        },
    }
