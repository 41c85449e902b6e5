"""The lowest versions pyproject.toml allows are versions the package works with.

`make test` runs against the newest versions the ranges allow (pip resolves them); this runs
the suite's core, in a fresh virtual environment, against the lowest: each `>=` bound of a
runtime dependency pinned with `==`. A bound that is only a wish (a private detail or an API
newer than it) fails here, not in a user's install.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.packaging

#: The suite's core: everything that needs the package and its runtime dependencies only.
CORE = [
    "tests/test_middleware.py",
    "tests/test_config.py",
    "tests/test_credentials.py",
    "tests/test_dpop.py",
    "tests/test_policy.py",
    "tests/test_origin.py",
    "tests/test_urls.py",
    "tests/test_values.py",
    "tests/test_errors.py",
    "tests/test_auth_info.py",
    "tests/validators",
    "tests/server/test_introspection.py",
    "tests/broker/test_sealing.py",
    "tests/broker/test_signing_keys.py",
    "tests/broker/test_authorization_server.py",
]
TEST_TOOLS = ["pytest", "pytest-asyncio", "hypothesis", "trustme", "pyjwt[crypto]", "python-multipart"]


#: The extras the core's tests use besides the runtime dependencies (Redis storage, uvicorn).
EXTRAS = ["redis", "server"]


def lowest_pins() -> list[str]:
    """`name==lowest` for every runtime dependency and the EXTRAS, from its `>=` bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = [*project["dependencies"], *(d for extra in EXTRAS for d in project["optional-dependencies"][extra])]
    pins = []
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,.*)?", requirement)
        assert match is not None, f"{requirement}: every runtime dependency has a lower bound"
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def test_the_core_passes_against_the_lowest_allowed_versions(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    pins = lowest_pins()
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(wheel), *pins, *TEST_TOOLS],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    frozen = subprocess.run([python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    pinned = (line.partition("==") for line in frozen.splitlines() if "==" in line)
    versions = {canonicalize_name(name): Version(version) for name, _, version in pinned}
    for pin in pins:  # what runs below is what the bounds say
        name, version = pin.split("==")
        assert versions.get(canonicalize_name(name)) == Version(version), (pin, frozen)
    run = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *CORE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    imported = subprocess.run(
        [python, "-c", "import mcp_auth_middleware; print(mcp_auth_middleware.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(env))  # the wheel's copy, not this source tree
