"""The distribution as a user gets it: `python -m build`, then the wheel in a fresh venv."""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import mcp_auth_middleware

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return out


def test_wheel_metadata_is_complete(dist: Path) -> None:
    (wheel,) = dist.glob("mcp_oauth_middleware-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        entry_points = archive.read(metadata_name.replace("METADATA", "entry_points.txt")).decode()
    assert metadata["Name"] == "mcp-oauth-middleware"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.11"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "mcp_auth_middleware/py.typed" in names
    assert {"fastmcp", "mcp", "redis", "otel", "demo"} <= set(metadata.get_all("Provides-Extra"))
    assert "mcp-oauth-middleware = mcp_auth_middleware.cli:main" in entry_points
    assert "# mcp-oauth-middleware" in metadata.get_payload()  # the README is the long description
    assert metadata["Version"] == mcp_auth_middleware.__version__
    assert "Homepage, https://pypi.org/project/mcp-oauth-middleware/" in metadata.get_all("Project-URL")
    # What the README points pip users at is in the wheel: the examples, with their helper.
    assert {"mcp_auth_middleware/examples/fastmcp_server.py", "mcp_auth_middleware/examples/_options.py"} <= set(names)


def test_sdist_holds_the_sources_license_and_readme(dist: Path) -> None:
    (sdist,) = dist.glob("mcp_oauth_middleware-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "src/mcp_auth_middleware/py.typed"} <= names
    assert "examples/fastmcp_server.py" in names
    assert not [n for n in names if n.startswith(".ci/") or "node_modules" in n]  # CI's script is not the user's


QUICKSTART_CHECK = """
import asyncio, re, sys
import httpx2

readme = open(sys.argv[1]).read()
namespace = {}
exec(re.search(r"```python\\n(.*?)```", readme, re.S).group(1), namespace)  # the README's first block


async def main():
    transport = httpx2.ASGITransport(app=namespace["app"])
    async with httpx2.AsyncClient(transport=transport, base_url="https://mcp.example.com") as client:
        response = await client.post("/mcp", json={})
        print(response.status_code, response.headers["www-authenticate"])


asyncio.run(main())
"""


def test_wheel_installs_into_a_fresh_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("mcp_oauth_middleware-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    # With the extra the README's quickstart needs (FastMCP).
    subprocess.run([python, "-m", "pip", "install", "--quiet", f"{wheel}[fastmcp]"], check=True, capture_output=True)
    quickstart = subprocess.run(
        [python, "-c", QUICKSTART_CHECK, str(ROOT / "README.md")], capture_output=True, text=True, cwd=tmp_path
    )
    assert quickstart.returncode == 0, quickstart.stderr
    assert quickstart.stdout.startswith(
        '401 Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'
    )
    imported = subprocess.run(
        [python, "-c", "import mcp_auth_middleware as m; print(m.__file__); print(m.MCPAuthMiddleware.__name__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split()
    assert imported[0].startswith(str(env))  # the installed wheel, not this source tree
    assert imported[1] == "MCPAuthMiddleware"
    version = subprocess.run(
        [env / "bin" / "mcp-oauth-middleware", "--version"], check=True, capture_output=True, text=True
    )
    assert version.stdout.strip().startswith("mcp-oauth-middleware 0.")
    examples = subprocess.run(
        [env / "bin" / "mcp-oauth-middleware", "examples"], check=True, capture_output=True, text=True
    ).stdout
    installed = env / "lib"
    assert f"{python} {installed}" in examples and "mcp_auth_middleware/examples/fastmcp_server.py" in examples
