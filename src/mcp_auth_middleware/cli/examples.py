"""`mcp-oauth-middleware examples`: where the example servers are, and how to run each."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

from ._common import fail


def add_parser(commands: Any) -> None:
    examples = commands.add_parser(
        "examples", help="where the example servers are, and how to run them", description=__doc__
    )
    examples.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The example servers installed with the package (a source tree's `examples/` when run
    from one), and the command that runs each against the demo's authorization server."""
    here = Path(__file__).resolve().parents[1]
    folder = next((f for f in (here / "examples", here.parents[1] / "examples") if f.is_dir()), None)
    if folder is None:
        return fail("examples", "the examples are not installed with this copy of the package", 1)
    print(f"The examples are in {folder}. With `mcp-oauth-middleware demo` running in another terminal:\n")
    for script in sorted(folder.glob("[!_]*.py")):
        lines = (ast.get_docstring(ast.parse(script.read_text())) or "").splitlines()
        needs = next((line for line in lines if line.startswith("Needs: ")), "")
        print(f"  {sys.executable} {script}\n      {lines[0]}" + (f"\n      {needs}" if needs else ""))
    return 0
