"""End-to-end throughput: FastMCP on real uvicorn, with and without the middleware, under the
same traffic (every request carries a valid token; the bare server ignores it).

Both servers run side by side, each in its own process; they are loaded in turn, in short
alternating rounds, by concurrent clients on 127.0.0.1, so that the machine's drift hits both
alike. Reported per round pair: requests per second, and the server's own CPU time per
request (from /proc), which does not depend on how fast the clients are.

A second floor server, the same code as the first, shows how far apart the run puts two
identical servers: differences smaller than that are not resolved (bench/instructions.py
counts them instead).

    python bench/throughput.py [--rounds 16] [--seconds 2] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx2
from common import ratio_summary
from soak import ISSUER, start_server

from mcp_auth_middleware.testing import LocalIssuer, free_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # clock ticks: 100 per second on Linux


async def load(
    url: str, tokens: list[tuple[str, str]], seconds: float, clients: int, pid: int, authenticated: bool
) -> tuple[float, float]:
    """Requests per second and server CPU µs per request over `seconds`. Every answer is
    checked: 200, and with the middleware the tool saw the token's own subject."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    ).encode()
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    done = 0
    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:

        async def client(index: int, deadline: float) -> None:
            nonlocal done
            i = index
            while time.monotonic() < deadline:
                sub, token = tokens[i % len(tokens)]
                i += clients
                response = await http.post(url, content=body, headers={**base, "authorization": f"Bearer {token}"})
                expected = f'"{sub}"' if authenticated else '"anonymous"'
                if response.status_code != 200 or expected not in response.text:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
                done += 1

        # Warm-up: connections open, every token verified once (the steady state is warm).
        await asyncio.gather(*(client(i, time.monotonic() + 0.5) for i in range(clients)))
        done = 0
        cpu, started = cpu_seconds(pid), time.monotonic()
        await asyncio.gather(*(client(i, started + seconds) for i in range(clients)))
        elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    return done / elapsed, cpu / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    issuer = LocalIssuer(ISSUER)
    # "floor 2" is a second floor server, the same code: how far apart the bench puts two
    # identical servers is how much of a difference it can resolve.
    names = ("ours", "bare", "floor", "floor 2")
    ports = {name: free_port() for name in names}
    servers = {name: start_server(name.split()[0], issuer, port) for name, port in ports.items()}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    try:
        urls = {name: f"http://127.0.0.1:{port}/mcp" for name, port in ports.items()}
        # One token set per server (the audience is each server's URL), the same shape for all.
        tokens = {
            name: [
                (f"user-{i}", issuer.mint_token(audience=url, sub=f"user-{i}", scopes=["mcp"], expires_in=3600))
                for i in range(100)
            ]
            for name, url in urls.items()
        }

        def measure(name: str, seconds: float) -> tuple[float, float]:
            pid = servers[name].pid
            return asyncio.run(load(urls[name], tokens[name], seconds, args.clients, pid, name != "bare"))

        for name in names:  # a first pass at each server, not counted: imports, caches, pools
            measure(name, 3.0)
        for round_ in range(args.rounds):
            first = round_ % len(names)
            for name in names[first:] + names[:first]:  # each server first in turn
                results[name].append(measure(name, args.seconds))
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(10)

    def ratio(a: str, b: str, field: int) -> tuple[float, str]:
        return ratio_summary([r[field] for r in results[a]], [r[field] for r in results[b]])

    lines = [f"{'round':>5}" + "".join(f"  {n + ' req/s':>13}  {n + ' CPU µs/req':>18}" for n in names)]
    for i in range(args.rounds):
        lines.append(f"{i + 1:>5}" + "".join(f"  {results[n][i][0]:>13.0f}  {results[n][i][1]:>18.0f}" for n in names))
    throughput = ratio("ours", "bare", 0)
    lines += [
        "",
        "ratios, each taken within one round (median over rounds, and the middle half of the rounds):",
        f"  throughput, ours / bare FastMCP:      {throughput[1]}"
        f"  target >= 0.97x: {'met' if throughput[0] >= 0.97 else 'NOT met'}",
        f"  throughput, ours / floor middleware:  {ratio('ours', 'floor', 0)[1]}",
        f"  throughput, floor / bare FastMCP:     {ratio('floor', 'bare', 0)[1]}",
        f"  server CPU per request, ours / bare:  {ratio('ours', 'bare', 1)[1]}",
        f"  server CPU per request, ours / floor: {ratio('ours', 'floor', 1)[1]}",
        f"  two identical servers (floor 2 / floor): throughput {ratio('floor 2', 'floor', 0)[1]},"
        f" CPU per request {ratio('floor 2', 'floor', 1)[1]}",
        "  (a difference smaller than the last line's is not resolved by this run)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
