"""Instructions per request under valgrind's callgrind: the same comparisons as the timed
benchmarks, counted instead of timed, so the figures do not move with the machine's load
(the same count twice on a busy machine). Needs valgrind (Debian: `apt-get install valgrind`).

  warm      a repeated JWT on a Starlette route: bare, the hash+lookup floor, ours
  cold      a new JWT on every request, same route: bare, one raw RS256 verify as all a
            middleware adds, the least JWT middleware, ours
  fastmcp   a tools/call to FastMCP (stateless HTTP): bare, behind the least middleware that
            authenticates a repeated token (bench/soak_app.py's floor), behind ours

For a new token, only what a middleware does besides the signature check is compared: valgrind
runs OpenSSL on other code paths than the CPU does, so the verify's own count says little
about its time.

    python bench/instructions.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import Call, client_headers, hash_lookup_floor, http_scope, table

from mcp_auth_middleware.testing import LocalIssuer

HERE = Path(__file__).resolve().parent
ISSUER = "https://auth.example.com"
CASES = {
    "warm": ("bare", "floor", "ours"),
    "cold": ("bare", "verify", "least", "ours"),
    "fastmcp": ("bare", "floor", "ours"),
}
TOOL_CALL = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
).encode()


async def started(app: Any) -> None:
    """Run the app's lifespan startup (FastMCP's session manager needs it) and leave it running."""
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await messages.put({"type": "lifespan.startup"})
    ready = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            ready.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.get_running_loop().create_task(app(scope, messages.get, send))
    await ready.wait()


async def build(case: str, stack: str, issuer: LocalIssuer, n: int) -> tuple[Call, list[dict[str, Any]]]:
    """The app under count and its requests: the same one n times, or n with new tokens."""
    if case == "warm":
        from jwt_validation import RESOURCE, bare_app, ours

        token = issuer.mint_token(audience=RESOURCE, scopes=["mcp"])
        app = {"bare": bare_app, "floor": lambda: hash_lookup_floor(bare_app(), token), "ours": lambda: ours(issuer)}
        return Call(app[stack]()), [http_scope(headers=client_headers(token))] * n
    if case == "cold":
        from jwt_validation import RESOURCE, bare_app, least_jwt_middleware, ours, verify_in_request

        tokens = [issuer.mint_token(audience=RESOURCE, scopes=["mcp"], sub=f"user-{i}") for i in range(n)]
        app = {
            "bare": bare_app,
            "verify": lambda: verify_in_request(bare_app(), issuer, tokens),
            "least": lambda: least_jwt_middleware(bare_app(), issuer),
            "ours": lambda: ours(issuer),
        }
        return Call(app[stack]()), [http_scope(headers=client_headers(t)) for t in tokens]
    resource = "http://127.0.0.1:8000/mcp"
    os.environ.update(
        SOAK_ISSUER=ISSUER,
        SOAK_RESOURCE=resource,
        SOAK_JWKS=json.dumps(issuer.jwks),
        SOAK_MIDDLEWARE={"bare": "0", "floor": "floor", "ours": "1"}[stack],
    )
    import soak_app

    app = soak_app.create_app()
    await started(app)
    token = issuer.mint_token(audience=resource, sub="user-1", scopes=["mcp"])
    headers = [(b"host", b"127.0.0.1:8000"), *client_headers(token)[1:]]
    scope = dict(http_scope(headers=headers), scheme="http", server=("127.0.0.1", 8000))
    return Call(app, TOOL_CALL), [scope] * n


async def child(case: str, stack: str, n: int) -> None:
    """Runs inside valgrind: counting is switched on only around the n requests."""
    call, scopes = await build(case, stack, LocalIssuer(ISSUER), n + 30)
    for scope in scopes[:30]:  # warm-up: caches filled, lazy imports done
        assert await call(scope) == 200
    gc.collect()
    instrument("on")
    for scope in scopes[30:]:
        assert await call(scope) == 200
    instrument("off")


def instrument(state: str) -> None:
    """Switch callgrind's counting for this process; blocks, so that nothing else runs meanwhile."""
    subprocess.run(["callgrind_control", f"--instr={state}", str(os.getpid())], check=True, capture_output=True)


def count(case: str, stack: str, n: int) -> float:
    """Instructions per request of one stack (the toggles' own cost is shared by all stacks)."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        case,
        stack,
        "--n",
        str(n),
    ]
    # A fixed hash seed: str hashes place dict entries, and so change the count a little.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=HERE, env=env, check=False)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"{case}/{stack} failed under valgrind:\n{result.stderr[-2000:]}")
    return int(found.group(1)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "STACK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(*args.child, args.n))
        os._exit(0)  # FastMCP's session manager task is left running: no orderly shutdown needed
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("not run: valgrind is not installed (Debian: apt-get install valgrind)")
        return
    counts = {(case, stack): count(case, stack, args.n) for case, stacks in CASES.items() for stack in stacks}
    rows = [(case, stack, f"{value / 1000:,.1f}k") for (case, stack), value in counts.items()]
    warm_ours = counts["warm", "ours"] - counts["warm", "bare"]
    warm_floor = counts["warm", "floor"] - counts["warm", "bare"]
    # Besides the verify: what each adds over the middleware whose only work is the verify.
    cold_ours = counts["cold", "ours"] - counts["cold", "verify"]
    cold_least = counts["cold", "least"] - counts["cold", "verify"]
    lines = [
        table(rows, ("case", "stack", "instructions/request")),
        "",
        f"warm added / hash+lookup floor: {warm_ours / warm_floor:.2f}x"
        f" ({warm_ours / 1000:,.1f}k / {warm_floor / 1000:,.1f}k instructions)",
        f"cold, besides the verify, ours / least JWT middleware: {cold_ours / cold_least:.2f}x"
        f" ({cold_ours / 1000:,.1f}k / {cold_least / 1000:,.1f}k instructions)",
        f"FastMCP tools/call, ours / bare:  {counts['fastmcp', 'ours'] / counts['fastmcp', 'bare']:.3f}x",
        f"FastMCP tools/call, ours / floor: {counts['fastmcp', 'ours'] / counts['fastmcp', 'floor']:.3f}x",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
