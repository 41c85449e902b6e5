"""Docs are tests: every code block in README.md and docs/ runs as written.

Python blocks run as a reader copies them: each in a namespace of its own, unless its first
line says `# continued from the block above` (then it runs after that block, in its namespace);
with `__name__` not "__main__" (so a block's
`if __name__ == "__main__": uvicorn.run(...)` does not start a server), and with the
variables a reader is told to set (`MCP_AUTH_CLIENT_SECRET`). A block that defines pytest
tests (docs/testing.md) has them run with the testing kit's real fixtures. Shell blocks are
checked command by command: our CLI's arguments must parse (`--version` runs), `pip install`
names this distribution and its extras, `make` targets exist, `python bench/...` scripts take
the flags shown. Blocks in `text` (or without a language) are sample output, not code. Gateway configurations
(`nginx`, `caddyfile`) are run by tests/gateway; `yaml` ones must parse.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcp_auth_middleware.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The first line of a Python block that needs the one before it (the reader is told so).
CONTINUED = "# continued from the block above"
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)


@dataclass
class Block:
    document: Path
    line: int
    language: str
    code: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    text = document.read_text()
    return [Block(document, text[: m.start()].count("\n") + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def test_every_block_has_a_known_language() -> None:
    for document in DOCUMENTS:
        for block in blocks(document):
            assert block.language in ("python", "sh", "text", "", "mermaid", *CONFIGURATIONS), (
                f"{block}: unknown language {block.language!r}"
            )


#: Gateway configurations, and where each is checked: nginx and Caddy run as written in
#: tests/gateway (conftest.documented_config), one block of each; YAML (Traefik, Envoy: not
#: runnable here) must at least parse.
CONFIGURATIONS = ("nginx", "caddyfile", "yaml")


def test_gateway_configurations_are_the_tested_ones_or_parse() -> None:
    import yaml

    found = [block for document in DOCUMENTS for block in blocks(document) if block.language in CONFIGURATIONS]
    for language in ("nginx", "caddyfile"):
        shown = [block for block in found if block.language == language]
        assert [b.document.name for b in shown] == ["gateways.md"], f"one {language} block, in docs/gateways.md"
    for block in found:
        if block.language == "yaml":
            assert yaml.safe_load(block.code), f"{block}: not YAML"


@pytest.mark.parametrize(
    "document", [d for d in DOCUMENTS if any(b.language == "python" for b in blocks(d))], ids=lambda d: d.name
)
async def test_python_blocks_run(
    document: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MCP_AUTH_CLIENT_SECRET", "the-secret-from-your-vault")
    for name, value in BROKER_ENVIRONMENT.items():  # docs/broker.md's reader sets these
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for block in blocks(document):
        if block.language != "python":
            continue
        if not block.code.startswith(CONTINUED):
            namespace = {"__name__": f"docs.{document.stem}"}  # a fresh start, as a reader pastes it
        before = set(namespace)
        # dont_inherit: not this file's `from __future__ import annotations`, which a reader lacks.
        code = compile(block.code, str(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            await result
        for name in sorted(set(namespace) - before):
            if name.startswith("test_") and callable(namespace[name]):
                function = namespace[name]
                fixtures = {p: request.getfixturevalue(p) for p in inspect.signature(function).parameters}
                outcome = function(**fixtures)
                if inspect.iscoroutine(outcome):
                    await outcome


#: What docs/broker.md tells its reader to set: the app registered at Entra, the broker's secret.
BROKER_ENVIRONMENT = {
    "ENTRA_CLIENT_ID": "broker",
    "ENTRA_CLIENT_SECRET": "broker-secret",
    "ENTRA_TENANT_ID": "5b4f6e2a-0c1d-4e8f-9a7b-3c2d1e0f9a8b",
    "MCP_BROKER_SECRETS": "a-secret-of-at-least-32-characters-from-your-vault",
}


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def check_command(words: list[str], where: str, files: frozenset[str] = frozenset()) -> None:
    if words and "=$(" in words[0]:  # VAR=$(command ...): the command
        words = [words[0].split("=$(", 1)[1], *words[1:]]
        words[-1] = words[-1].removesuffix(")")
    words = [w for w in words if w != "&"]
    program, args = words[0], words[1:]
    if program == "pip":
        assert args[0] == "install", where
        for requirement in args[1:]:
            name, _, extras = requirement.partition("[")
            assert name == PYPROJECT["project"]["name"], where
            wanted = set(extras.rstrip("]").split(",")) - {""}
            assert wanted <= set(PYPROJECT["project"]["optional-dependencies"]), where
    elif program == "make":
        assert set(args) <= MAKE_TARGETS, where
    elif program == "mcp-oauth-middleware":
        if args == ["--version"]:
            result = subprocess.run([sys.executable, "-m", "mcp_auth_middleware.cli", "--version"], capture_output=True)
            assert result.returncode == 0, where
            return
        parser_check(args, where)
    elif program == "nginx":
        assert "-c" in args, where
    elif program == "caddy":
        assert args[:1] == ["run"] and "--config" in args, where
    elif program == "uvicorn":
        assert args and ":" in args[0], where  # module:app
    elif program == "curl":
        assert all(u.startswith("http://127.0.0.1:") for u in args if u.startswith("http")), where  # loopback only
    elif program == "python" and args[0] in files:
        pass  # a file the page shows: run by test_documented_systems_run_with_their_client
    elif program == "python" and args[0].startswith("bench/"):
        script = ROOT / args[0]
        assert script.exists(), where
        shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT)
        assert shown.returncode == 0, where
        for flag in (a for a in args[1:] if a.startswith("--")):
            assert flag in shown.stdout, f"{where}: {flag} is not an option of {args[0]}"
    else:
        raise AssertionError(f"{where}: no check for the command {program!r}; add one")


def parser_check(args: list[str], where: str) -> None:
    """Our CLI accepts these arguments (parsed, not run: they name example hosts)."""
    import argparse

    seen: dict[str, Any] = {}
    original = argparse.ArgumentParser.parse_args

    def parse_only(self: argparse.ArgumentParser, *a: Any, **k: Any) -> Any:
        seen["args"] = original(self, *a, **k)
        raise SystemExit(0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
        with pytest.raises(SystemExit) as exited:
            main(args)
    assert exited.value.code == 0 and "args" in seen, f"{where}: {args} does not parse"


@pytest.mark.parametrize(
    "document", [d for d in DOCUMENTS if any(b.language == "sh" for b in blocks(d))], ids=lambda d: d.name
)
def test_shell_blocks_name_real_commands(document: Path) -> None:
    files = frozenset(files_of(document))
    for block in blocks(document):
        if block.language != "sh":
            continue
        for offset, line in enumerate(block.code.splitlines(), start=1):
            command = line.split("#", 1)[0].strip()
            if command:
                words = [w.replace("$TOKEN", "token-value") for w in shlex.split(command)]
                check_command(words, f"{block.document.name}:{block.line + offset}", files)


# -- pages that show a system of files: run as the page says ----------------------------------


def files_of(document: Path) -> dict[str, Block]:
    """The Python blocks that are files: their first line is `# name.py`."""
    found = {}
    for block in blocks(document):
        first = block.code.split("\n", 1)[0]
        if block.language == "python" and re.fullmatch(r"# [\w-]+\.py", first):
            found[first[2:]] = block
    return found


SYSTEMS = [d for d in DOCUMENTS if files_of(d)]


@pytest.mark.end_to_end
@pytest.mark.parametrize("document", SYSTEMS, ids=lambda d: d.name)
async def test_documented_systems_run_with_their_client(
    document: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The page's files and its shell recipe, as a reader runs them: servers (the demo, or the
    page's files; on free ports in place of the page's), `TOKEN=$(mcp-oauth-middleware token
    ...)`, the client, whose output is the page's `text` block after the recipe (`...` there
    stands for what differs from run to run, as in doctest)."""
    from contextlib import ExitStack

    from mcp_auth_middleware.demo import build_demo
    from mcp_auth_middleware.testing import free_port, serve

    monkeypatch.chdir(tmp_path)
    files = files_of(document)
    all_blocks = blocks(document)
    at = next(i for i, b in enumerate(all_blocks) if b.language == "sh" and any(f"python {n}" in b.code for n in files))
    recipe, expected = all_blocks[at], all_blocks[at + 1]
    assert expected.language == "text", f"{recipe}: the output the reader sees follows the recipe"
    shown = "".join(block.code for block in [*files.values(), recipe])
    # The page's ports (and the demo's, 8000 and 9000), each moved to a free one.
    ports = {port: str(free_port()) for port in {*re.findall(r"127\.0\.0\.1:(\d+)", shown), "8000", "9000"}}

    def moved(text: str) -> str:
        return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{ports.get(m.group(1), m.group(1))}", text)

    variables: dict[str, str] = {}
    with ExitStack() as running:
        for line in recipe.code.splitlines():
            words = shlex.split(moved(line.split("#", 1)[0]))
            if not words:
                continue
            if words[:2] == ["mcp-oauth-middleware", "demo"] and words[-1] == "&":
                stack = build_demo("127.0.0.1", int(ports["8000"]), int(ports["9000"]))
                running.enter_context(serve(stack.authorization_server.app, port=int(ports["9000"])))
                running.enter_context(serve(stack.mcp_app, port=int(ports["8000"])))
            elif words[0] == "python" and words[-1] == "&":  # a server: served on its (moved) port
                namespace = run_file(files[words[1]], moved)
                port = re.findall(r"port=(\d+)", files[words[1]].code)[-1]
                running.enter_context(serve(namespace["app"], port=int(ports[port])))
            elif "=$(" in words[0]:  # VAR=$(mcp-oauth-middleware ...)
                name, first = words[0].split("=$(", 1)
                args = [first, *words[1:]]
                args[-1] = args[-1].removesuffix(")")
                assert args[0] == "mcp-oauth-middleware", recipe
                # The token command's default issuer is the page's 9000, moved as the servers were.
                issuer = ["--issuer", moved("http://127.0.0.1:9000")] if args[1] == "token" else []
                capsys.readouterr()
                assert await asyncio.to_thread(main, args[1:] + issuer) == 0
                variables[name] = capsys.readouterr().out.strip()
            elif words[0] == "python":  # the client, with its arguments
                namespace = run_file(files[words[1]], moved)
                argv = [variables.get(w.removeprefix("$"), w) for w in words[2:]]
                capsys.readouterr()
                await namespace["main"](*argv)
                out = capsys.readouterr().out.strip()
                pattern = re.escape(expected.code.strip()).replace(re.escape("..."), ".+")
                assert re.fullmatch(pattern, out), f"{recipe}: printed {out!r}"
            else:
                raise AssertionError(f"{recipe}: no way to run {line!r}")


def run_file(block: Block, moved: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": block.code.split("\n", 1)[0][2:-3]}
    exec(compile(moved(block.code), str(block), "exec", dont_inherit=True), namespace)
    return namespace


def test_the_readme_starts_where_a_pypi_reader_is() -> None:
    """Someone who installed from PyPI has no clone and no Makefile: the first command shown is
    theirs; the clone's two commands come next."""
    shell = [block.code.split("\n") for block in blocks(ROOT / "README.md") if block.language == "sh"]
    assert shell[0][:2] == ["pip install 'mcp-oauth-middleware[demo]'", "mcp-oauth-middleware demo"]
    assert [line.split()[:2] for line in shell[1] if line.startswith("make")] == [["make", "demo"], ["make", "test"]]


# -- every documented MCP server with tools: served, and its tools called by a real client ----


def served_blocks() -> list[Block]:
    """Blocks that make a protected MCP server with tools (and are not files of a system,
    which test_documented_systems_run_with_their_client runs)."""
    found = []
    for document in DOCUMENTS:
        files = [b.line for b in files_of(document).values()]
        for block in blocks(document):
            code = block.code
            makes_tools = "@mcp.tool" in code or "@server.tool" in code
            serves = "MCPAuthMiddleware(" in code and re.search(r"^app = ", code, re.M)  # (testing.md's: fixtures)
            # A broker's server signs its clients in through a provider: tests/end_to_end/test_broker.py.
            brokered = "broker=" in code
            if block.language == "python" and makes_tools and serves and block.line not in files and not brokered:
                found.append(block)
    return found


@pytest.mark.end_to_end
@pytest.mark.parametrize("block", served_blocks(), ids=str)
async def test_documented_mcp_servers_answer_a_client_calling_their_tools(block: Block) -> None:
    """The block as written, with its example hosts pointed at a local authorization server and
    a free port: served on uvicorn, and every tool that takes no argument called by the MCP SDK
    client with a token holding every scope the block's rules name."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from mcp_auth_middleware.testing import free_port, running_authorization_server, serve

    port = free_port()
    with running_authorization_server(scopes_supported=SCOPE_WORDS) as server:
        code = block.code.replace("https://auth.example.com", server.issuer)
        code = code.replace("https://mcp.example.com", f"http://127.0.0.1:{port}")
        namespace: dict[str, Any] = {"__name__": "docs.served"}
        exec(compile(code, str(block), "exec", dont_inherit=True), namespace)
        app = namespace["app"]
        rules = app.config.scopes
        token = server.mint_token(
            sub="reader", audience=app.config.resource.url, scopes=sorted(rules.required | rules.mentioned())
        )
        with serve(app, port=port):
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20) as http,
                Client(streamable_http_client(app.config.resource.url, http_client=http)) as client,
            ):
                tools = (await client.list_tools()).tools
                # The token is a person's: a tool only machines may call (tool_callers) is not for it.
                callable_ = [
                    t for t in tools if not t.input_schema.get("required") and rules.callers.get(t.name) != "machines"
                ]
                assert callable_, f"{block}: no tool a client can call without arguments"
                for tool in callable_:
                    result = await client.call_tool(tool.name, {})
                    assert not result.is_error, f"{block}: {tool.name}: {result.content}"


#: The scopes the documented servers' rules use: the local authorization server must know them.
SCOPE_WORDS = ["mcp", "notes:read", "notes:delete", "repo:delete", "tickets:read", "admin"]
