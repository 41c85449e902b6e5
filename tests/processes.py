"""The real components the tests start (servers, gateways, authorization servers): waiting
for one to listen, and stopping it, the same way for all."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

__all__ = ["BROWSER", "in_chromium", "stop_process", "wait_for_port"]

#: The node package that drives Debian's headless Chromium (never a downloaded browser).
BROWSER = Path(__file__).parent / "end_to_end" / "browser"


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    """Until `process` listens on 127.0.0.1:`port`; a failed test saying why if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"{what} exited with {process.returncode}:\n{output[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate, and kill if it does not end within ten seconds."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def in_chromium(script: str, *args: str, given: Any = None, package: str = "playwright-core") -> Any:
    """What `script` (in tests/end_to_end/browser, driving Debian's Chromium) prints as JSON;
    `given` goes to its standard input as JSON. A missing node, Chromium or npm package fails."""
    node, chromium = shutil.which("node"), shutil.which("chromium")
    assert node is not None, "node is not installed: `make test` installs it"
    assert chromium is not None, "chromium is not installed: `make test` installs Debian's chromium"
    assert (BROWSER / "node_modules" / package).is_dir(), (
        f"{package} is not installed: `make test` runs npm ci in tests/end_to_end/browser"
    )
    run = subprocess.run(
        [node, script, *args],
        input=None if given is None else json.dumps(given),
        cwd=BROWSER,
        capture_output=True,
        text=True,
        timeout=120,
        env={"CHROMIUM": chromium, "PATH": "/usr/bin:/bin", "HOME": str(BROWSER)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)
