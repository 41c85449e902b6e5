"""Runs every benchmark in one go (`make bench`); each script also runs alone with its own flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("Local JWT validation vs. FastMCP's and the MCP SDK's auth", "jwt_validation.py"),
    ("Cached introspection and burst deduplication", "introspection.py"),
    ("Per-tool scope rules on a 1 KB tools/call", "per_tool_policy.py"),
    ("Lists that match the rules, and the MCP 2026-07-28 header check", "listing.py"),
    ("Token exchange: a cached exchange and one round trip", "exchange.py"),
    ("Token-guessing guard under a 10,000-address attack", "rate_limit.py"),
    ("DPoP proof checks against a raw ES256 verify", "dpop.py"),
    ("End-to-end throughput: real uvicorn + FastMCP, with and without the middleware", "throughput.py"),
    ("Gateway mode: FastMCP behind nginx with and without auth_request, and per decision", "gateway.py"),
    ("The broker: sign-in round trips, and its tokens against any JWT issuer's", "broker.py"),
    ("Load and soak: real uvicorn + FastMCP, mixed traffic", "soak.py"),
    ("Instructions per request under callgrind (needs valgrind)", "instructions.py"),
]


def main() -> int:
    failed = 0
    for title, script in SCRIPTS:
        print(f"\n## {title}\n\n$ python bench/{script}\n", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / script), *sys.argv[1:]], cwd=HERE)
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
