"""Load and soak: a real uvicorn server (its own process) wrapping a FastMCP app, hundreds of
concurrent clients on 127.0.0.1 sending valid, expired, forged and missing tokens for a bounded
time. Reports 5xx and wrong decisions (both must be zero), the server's RSS over time, and
p50/p99 latency against the same server without the middleware.

    python bench/soak.py [--seconds 30] [--clients 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from mcp_auth_middleware.testing import LocalIssuer, free_port

HERE = Path(__file__).resolve().parent
ISSUER = "https://auth.example.com"
KINDS = ("valid", "expired", "forged", "missing")


@dataclass
class Report:
    requests: int = 0
    server_errors: int = 0
    wrong: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    rss_kb: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def percentile(self, kind: str, q: float) -> float:
        values = sorted(self.latencies[kind])
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


#: The servers soak_app.py builds: FastMCP behind our middleware, bare, or behind the floor.
MODES = {"ours": "1", "bare": "0", "floor": "floor"}


def start_server(mode: str, issuer: LocalIssuer, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SOAK_MIDDLEWARE": MODES[mode],
        "SOAK_ISSUER": ISSUER,
        "SOAK_RESOURCE": f"http://127.0.0.1:{port}/mcp",
        "SOAK_JWKS": json.dumps(issuer.jwks),
        "PYTHONPATH": str(HERE),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "soak_app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(process.stderr.read().decode() if process.stderr else "server exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start")


async def load(url: str, issuer: LocalIssuer, seconds: float, clients: int, pid: int, middleware: bool) -> Report:
    report = Report()
    valid = [
        (f"user-{i}", issuer.mint_token(audience=url, sub=f"user-{i}", scopes=["mcp"], expires_in=3600))
        for i in range(300)
    ]
    expired = [issuer.mint_token(audience=url, scopes=["mcp"], expires_in=-120) for _ in range(50)]
    forger = LocalIssuer(ISSUER, kid=issuer.key.kid)
    forged = [forger.mint_token(audience=url, scopes=["mcp"]) for _ in range(50)]
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    ).encode()
    base_headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    deadline = time.monotonic() + seconds
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx2.AsyncClient, rng: random.Random) -> None:
        while time.monotonic() < deadline:
            kind = KINDS[0] if not middleware else rng.choices(KINDS, weights=(70, 10, 10, 10))[0]
            headers = dict(base_headers)
            sub = None
            if kind == "valid":
                sub, token = rng.choice(valid)
                headers["authorization"] = f"Bearer {token}"
            elif kind == "expired":
                headers["authorization"] = f"Bearer {rng.choice(expired)}"
            elif kind == "forged":
                headers["authorization"] = f"Bearer {rng.choice(forged)}"
            started = time.perf_counter()
            response = await http.post(url, content=body, headers=headers)
            report.latencies[kind].append(time.perf_counter() - started)
            report.requests += 1
            if response.status_code >= 500:
                report.server_errors += 1
            if not middleware:  # the bare server authenticates nobody: it must simply answer
                ok = response.status_code == 200
            elif kind == "valid":
                ok = response.status_code == 200 and f'"{sub}"' in response.text  # the right identity
            else:
                ok = response.status_code in (401, 403, 429)
            if not ok:
                report.wrong += 1
                if len(report.examples) < 5:
                    report.examples.append(f"{kind}: {response.status_code} {response.text[:120]}")

    async def sample_rss() -> None:
        while time.monotonic() < deadline:
            report.rss_kb.append(_rss_kb(pid))
            await asyncio.sleep(0.5)

    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.gather(sample_rss(), *(client(http, random.Random(i)) for i in range(clients)))
    return report


def run(seconds: float, clients: int, middleware: bool = True) -> Report:
    issuer = LocalIssuer(ISSUER)
    port = free_port()
    server = start_server("ours" if middleware else "bare", issuer, port)
    try:
        return asyncio.run(load(f"http://127.0.0.1:{port}/mcp", issuer, seconds, clients, server.pid, middleware))
    finally:
        server.terminate()
        server.wait(10)


def describe(name: str, report: Report) -> list[str]:
    lines = [f"{name}: {report.requests} requests, {report.server_errors} 5xx, {report.wrong} wrong decisions"]
    for kind in KINDS:
        if report.latencies[kind]:
            lines.append(
                f"  {kind:8s} n={len(report.latencies[kind]):6d} p50={report.percentile(kind, 0.5):7.1f} ms"
                f"  p99={report.percentile(kind, 0.99):7.1f} ms"
            )
    if report.rss_kb:
        settled = report.rss_kb[len(report.rss_kb) // 4 :]  # after warm-up: caches full
        lines.append(
            f"  server RSS: start {report.rss_kb[0] / 1024:.1f} MiB, after warm-up "
            f"{settled[0] / 1024:.1f} MiB, end {settled[-1] / 1024:.1f} MiB, max {max(settled) / 1024:.1f} MiB"
        )
    lines.extend(f"  example: {e}" for e in report.examples)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    ours = run(args.seconds, args.clients, middleware=True)
    bare = run(args.seconds, args.clients, middleware=False)
    lines = describe("with the middleware", ours) + describe("without the middleware (valid requests only)", bare)
    p50 = ours.percentile("valid", 0.5) / bare.percentile("valid", 0.5)
    p99 = ours.percentile("valid", 0.99) / bare.percentile("valid", 0.99)
    lines.append(f"valid-request latency with/without the middleware: p50 x{p50:.2f}, p99 x{p99:.2f}")
    print("\n".join(lines))
    if ours.server_errors or ours.wrong:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
