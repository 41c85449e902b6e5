"""The real components the tests start (servers, gateways, authorization servers): waiting
for one to listen, and stopping it, the same way for all."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

__all__ = ["stop_process", "wait_for_port"]


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
