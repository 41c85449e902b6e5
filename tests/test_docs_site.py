"""The guide as a site (docs/conf.py): built strictly, so a broken link or anchor fails, and
each Mermaid diagram parsed by mermaid.js in a real browser, as GitHub and the site render it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .processes import in_chromium
from .test_docs import DOCUMENTS, blocks

ROOT = Path(__file__).resolve().parents[1]
BROWSER = ROOT / "tests" / "end_to_end" / "browser"
DIAGRAMS = [block for document in DOCUMENTS for block in blocks(document) if block.language == "mermaid"]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    from sphinx.cmd.build import build_main

    code = build_main(["-W", "--keep-going", "-n", "-q", "-b", "html", str(ROOT / "docs"), str(tmp_path)])
    assert code == 0, "sphinx-build -W: a warning above (a broken link or anchor, a page outside the toctree)"
    page = (tmp_path / "clients.html").read_text()
    assert 'class="mermaid"' in page  # the diagram is rendered as one, not shown as code


def test_the_flows_users_must_understand_are_drawn() -> None:
    drawn = {block.document.name: block.code for block in DIAGRAMS}
    assert "sequenceDiagram" in drawn["clients.md"]  # first contact: 401, metadata, AS, token, retry
    assert "insufficient_scope" in drawn["per-tool-scopes.md"]  # step-up
    assert "auth_request" in drawn["gateways.md"]  # client, gateway, service, upstream
    assert "token-exchange" in drawn["calling-other-apis.md"]  # client, MCP server, AS, downstream


@pytest.mark.interop
def test_every_diagram_parses_with_mermaid() -> None:
    errors = in_chromium("mermaid.mjs", given=[block.code for block in DIAGRAMS], package="mermaid")
    assert len(errors) == len(DIAGRAMS) >= 4
    for block, error in zip(DIAGRAMS, errors, strict=True):
        assert error is None, f"{block}: {error}"
