"""docs/compliance.md names, for each rule, the tests that show it: every one must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_compliance_md_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", (ROOT / "docs" / "compliance.md").read_text())
    assert len(named) > 40
    missing = []
    for path, name in named:
        module = ROOT / path
        defined = (
            {
                n.name
                for n in ast.walk(ast.parse(module.read_text()))
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if module.exists()
            else set()
        )
        if name not in defined:
            missing.append(f"{path}::{name}")
    assert not missing, missing
