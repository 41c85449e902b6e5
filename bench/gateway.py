"""Gateway mode: what asking the service costs, as ratios measured in one run.

1. Throughput: FastMCP on real uvicorn behind real nginx, with `auth_request` to the service
   (the configuration docs/gateways.md shows, only ports changed) and without (a plain proxy),
   loaded in turn in short alternating rounds by wrk (Debian's `wrk`), the same tools/call
   with one warm token.
   Reported per round: requests per second, and the CPU time per request of every server
   process (nginx's worker, FastMCP, and the service when asked), read from /proc.
2. Per decision, in process: the service deciding nginx's subrequest for a `tools/call`,
   against the middleware deciding that same request in front of an app that does nothing
   (warm token, per-tool rules, CPU time, interleaved rounds).

    python bench/gateway.py [--rounds 8] [--seconds 2] [--clients 32] [--n 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from common import Call, compare, http_scope, median, ratio_summary, table
from throughput import cpu_seconds

from mcp_auth_middleware import MCPAuthMiddleware
from mcp_auth_middleware.gateway import GatewayService
from mcp_auth_middleware.testing import LocalIssuer, free_port

HERE = Path(__file__).resolve().parent
ISSUER = "https://auth.example.com"
TOOLS = {"delete_notes": ["notes:delete"]}
#: An MCP 2026-07-28 tools/call: the service decides per tool from its headers only then.
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
CALL = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}, "_meta": META}}
)
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "whoami",
}
#: The lines of the documented configuration that keep nginx's connections to the service open.
KEEPALIVE_LINES = ("keepalive 32;", "proxy_http_version 1.1;  # with Connection", 'proxy_set_header Connection "";')


# -- the processes ------------------------------------------------------------------------


def wait_for(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {process.stderr.read().decode() if process.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def start_app(factory: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", f"gateway_app:{factory}", "--factory", "--port", str(port)]
    command += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log", "--no-proxy-headers"]
    process = subprocess.Popen(
        command, env={**os.environ, **env, "PYTHONPATH": str(HERE)}, cwd=HERE, stderr=subprocess.PIPE
    )
    wait_for(port, process, factory)
    return process


def nginx_config(port: int, auth_port: int, upstream_port: int, authorized: bool, keepalive: bool = True) -> str:
    if authorized:
        text = (HERE.parent / "docs" / "gateways.md").read_text()
        config = re.findall(r"^```nginx\n(.*?)^```", text, re.S | re.M)[0]
        if not keepalive:  # a connection per subrequest, as nginx does by default
            config = "".join(line for line in config.splitlines(True) if not any(k in line for k in KEEPALIVE_LINES))
        config = config.replace("127.0.0.1:9100", f"127.0.0.1:{auth_port}")
        config = config.replace("127.0.0.1:8100", f"127.0.0.1:{upstream_port}")
        return str(config.replace("listen 8080;", f"listen 127.0.0.1:{port};"))
    return f"""events {{}}
http {{
    upstream mcp_server {{ server 127.0.0.1:{upstream_port}; }}
    server {{
        listen 127.0.0.1:{port};
        location /mcp {{
            proxy_pass http://mcp_server;
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def start_nginx(directory: Path, config: str, port: int) -> tuple[subprocess.Popen[bytes], int]:
    """nginx with one worker; its pid and its worker's (the one doing the work)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    (directory / "logs").mkdir(parents=True)
    (directory / "nginx.conf").write_text(config)
    globals_ = f"daemon off; worker_processes 1; pid {directory}/nginx.pid; error_log {directory}/error.log;"
    globals_ += " user root;" if os.geteuid() == 0 else ""
    command = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", globals_]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    wait_for(port, process, "nginx")
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return process, int(children[0])


# -- 1. throughput behind nginx -------------------------------------------------------------


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "whoami"
wrk.headers["Authorization"] = "Bearer %s"
"""


def load(url: str, script: Path, seconds: float, clients: int, pids: list[int]) -> tuple[float, float, float]:
    """Requests per second under wrk, the servers' CPU µs per request, and the last server's
    alone; any answer but a 2xx fails the run (wrk counts them)."""
    cpu, last = sum(map(cpu_seconds, pids)), cpu_seconds(pids[-1])
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu, last = sum(map(cpu_seconds, pids)) - cpu, cpu_seconds(pids[-1]) - last
    if "Non-2xx" in output:
        raise RuntimeError(f"{url}: answers that are not 2xx\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return rate, cpu / done * 1e6, last / done * 1e6


def throughput(args: argparse.Namespace, issuer: LocalIssuer) -> list[str]:
    if not shutil.which("wrk"):
        return ["throughput: needs wrk (apt-get install wrk)"]
    names = ("with auth", "no keepalive", "without")
    ports = {name: free_port() for name in (*names, "upstream", "service")}
    resource = f"http://127.0.0.1:{ports['with auth']}/mcp"
    env = {"BENCH_ISSUER": ISSUER, "BENCH_JWKS": json.dumps(issuer.jwks), "BENCH_RESOURCE": resource}
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as directory:
        try:
            upstream = start_app("upstream", ports["upstream"], env)
            service = start_app("service", ports["service"], env)
            processes += [upstream, service]
            pids: dict[str, list[int]] = {}
            for name in names:
                authorized = name != "without"
                config = nginx_config(ports[name], ports["service"], ports["upstream"], authorized, name == "with auth")
                nginx, worker = start_nginx(Path(directory) / name.replace(" ", "-"), config, ports[name])
                processes.append(nginx)
                pids[name] = [worker, upstream.pid] + ([service.pid] if authorized else [])
            token = issuer.mint_token(audience=resource, sub="alice", scopes=["mcp"], expires_in=3600)
            script = Path(directory) / "call.lua"
            script.write_text(WRK_SCRIPT % (CALL, token))
            urls = {name: f"http://127.0.0.1:{ports[name]}/mcp" for name in results}
            # Once, before the load: the tool saw the caller behind auth_request, nobody without.
            for name, expected in (("with auth", '"alice"'), ("no keepalive", '"alice"'), ("without", '"anonymous"')):
                answer = httpx2.post(urls[name], content=CALL, headers={**HEADERS, "authorization": f"Bearer {token}"})
                assert answer.status_code == 200 and expected in answer.text, answer.text

            def measure(name: str, seconds: float) -> tuple[float, float, float]:
                return load(urls[name], script, seconds, args.clients, pids[name])

            for name in results:  # a first pass, not counted: imports, caches, connection pools
                measure(name, 2.0)
            for round_ in range(args.rounds):
                for name in list(results)[round_ % 3 :] + list(results)[: round_ % 3]:
                    results[name].append(measure(name, args.seconds))
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
    rows = [
        (
            str(i + 1),
            *(f"{results[n][i][0]:.0f}" for n in results),
            *(f"{results[n][i][1]:.0f}" for n in results),
            f"{results['with auth'][i][2]:.0f}",
            f"{results['no keepalive'][i][2]:.0f}",
        )
        for i in range(args.rounds)
    ]
    header = (
        "round",
        "req/s with auth",
        "req/s no keepalive",
        "req/s without",
        "CPU µs/req with auth",
        "CPU µs/req no keepalive",
        "CPU µs/req without",
        "the service's",
        "the service's, no keepalive",
    )

    def ratio(of: str, to: str, index: int) -> str:
        return ratio_summary([r[index] for r in results[of]], [r[index] for r in results[to]])[1]

    return [
        table(rows, header),
        "",
        f"throughput, with auth_request (as documented) / without:       {ratio('with auth', 'without', 0)}",
        f"throughput, with auth_request, no keepalive / without:         {ratio('no keepalive', 'without', 0)}",
        f"servers' CPU per request, with (as documented) / without:      {ratio('with auth', 'without', 1)}",
        f"servers' CPU per request, no keepalive / without:              {ratio('no keepalive', 'without', 1)}",
        f"the service's CPU per request, as documented / no keepalive:   {ratio('with auth', 'no keepalive', 2)}",
        "(the servers: nginx's worker, FastMCP, and with auth_request the service; 'no keepalive': the documented",
        "configuration less its keepalive lines, a connection to the service per request)",
    ]


# -- 2. per decision, in process -------------------------------------------------------------


async def noop(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def per_decision(args: argparse.Namespace, issuer: LocalIssuer) -> list[str]:
    resource = "https://mcp.example.com/mcp"
    token = issuer.mint_token(audience=resource, sub="alice", scopes=["mcp"])
    options: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": [ISSUER],
        "validator": issuer.validator(),
        "required_scopes": ["mcp"],
        "tool_scopes": TOOLS,
        "failure_limit": None,
    }
    request = [(b"host", b"mcp.example.com"), *((k.encode(), v.encode()) for k, v in HEADERS.items())]
    request.append((b"authorization", f"Bearer {token}".encode()))
    original = http_scope("/mcp", request)
    original["scheme"] = "http"
    subrequest = http_scope("/check", [h for h in request if h[0] != b"host"], method="GET")
    subrequest["headers"] += [
        (b"host", b"127.0.0.1:9100"),
        (b"x-original-method", b"POST"),
        (b"x-original-uri", b"/mcp"),
        (b"x-original-host", b"mcp.example.com"),
        (b"x-forwarded-for", b"203.0.113.7"),
    ]
    middleware = Call(MCPAuthMiddleware(noop, **options), CALL.encode())
    service = Call(GatewayService(gateway="nginx", **options))
    bare = Call(noop, CALL.encode())

    async def run_middleware(_: int) -> None:
        assert await middleware(original) == 200

    async def run_service(_: int) -> None:
        assert await service(subrequest) == 200

    async def run_bare(_: int) -> None:
        await bare(original)

    samples = await compare({"bare": run_bare, "middleware": run_middleware, "service": run_service}, args.n, 9)
    added_service = [s - b for s, b in zip(samples["service"], samples["bare"], strict=True)]
    added_middleware = [m - b for m, b in zip(samples["middleware"], samples["bare"], strict=True)]
    whole = ratio_summary(samples["service"], samples["middleware"])
    added = ratio_summary(added_service, added_middleware)
    rows = [(name, f"{median(values):.1f}") for name, values in samples.items()]
    return [
        table(rows, ("in process, warm token, tools/call with per-tool rules", "CPU µs per call (median)")),
        "",
        f"the service per decision / the middleware per request:              {whole[1]}",
        f"the same, each less the bare app's call (what each adds):           {added[1]}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--n", type=int, default=4000)
    args = parser.parse_args()
    issuer = LocalIssuer(ISSUER)
    lines = asyncio.run(per_decision(args, issuer))
    lines += ["", *throughput(args, issuer)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
