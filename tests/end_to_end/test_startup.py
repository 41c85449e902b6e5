"""What an operator sees when they start a protected server with real uvicorn: a configuration
that cannot work stops startup with one line, in every form of wrapping."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_auth_middleware.testing import free_port

pytestmark = pytest.mark.end_to_end

STARLETTE_FORM = """
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcp_auth_middleware import MCPAuthMiddleware


async def hello(request):
    return PlainTextResponse("hello")


app = Starlette(
    routes=[Route("/mcp", hello)],
    middleware=[Middleware(MCPAuthMiddleware, {options})],
)
"""

FASTAPI_FORM = """
from fastapi import FastAPI

from mcp_auth_middleware import MCPAuthMiddleware

app = FastAPI()
app.add_middleware(MCPAuthMiddleware, {options})
"""


def run_uvicorn(tmp_path: Path, source: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "server.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "uvicorn", "server:app", "--port", str(free_port()), *extra],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("form", [STARLETTE_FORM, FASTAPI_FORM], ids=["starlette", "fastapi"])
@pytest.mark.parametrize(
    ("options", "line"),
    [
        ('issuer="https://auth.example.com"', "MCPAuthMiddleware: `resource` is required"),
        (
            'resouce="https://mcp.example.com/mcp", issuer="https://auth.example.com"',
            "MCPAuthMiddleware: unknown option 'resouce' (did you mean 'resource'?)",
        ),
        ('resource="/mcp", issuer="https://auth.example.com"', "MCPAuthMiddleware: resource '/mcp' is not an absolute"),
    ],
)
def test_the_middleware_form_stops_startup_with_one_line(tmp_path: Path, form: str, options: str, line: str) -> None:
    """Starlette builds `Middleware(...)` only when serving starts, inside the lifespan: the
    error must fail the startup (uvicorn exits), not pass for "lifespan unsupported" and
    leave every request a 500."""
    result = run_uvicorn(tmp_path, form.format(options=options))
    assert result.returncode != 0
    assert line in result.stderr
    assert "Application startup failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert "lifespan' protocol appears unsupported" not in result.stderr
    assert result.stderr.count(line) == 1
