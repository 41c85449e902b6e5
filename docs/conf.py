"""The guide as a site: Sphinx with MyST (the pages stay Markdown, as GitHub shows them) and
sphinxcontrib-mermaid (the diagrams stay text, as GitHub renders them). Built strictly:
`make docs` (or `sphinx-build -W --keep-going -n docs build/docs`); the suite builds it too
(tests/test_docs_site.py), so a broken link or anchor fails CI."""

project = "mcp-oauth-middleware"
author = "mcp-oauth-middleware developers"
extensions = ["myst_parser", "sphinxcontrib.mermaid"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
# Links to headings (`page.md#a-heading`) are checked against the heading anchors GitHub makes.
myst_heading_anchors = 4
# ```mermaid blocks are diagrams, as on GitHub.
myst_fence_as_directive = ["mermaid"]
# Pygments reads nginx's regex locations only in its relaxed mode: the block is shown all the same.
suppress_warnings = ["misc.highlighting_failure"]
html_theme = "alabaster"
html_title = "mcp-oauth-middleware"
