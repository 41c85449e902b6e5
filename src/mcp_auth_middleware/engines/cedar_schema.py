"""A starting Cedar schema and policy file from what a running MCP server lists: the entity and
action types the `Cedar` engine sends, and per tool its arguments as attributes (the JSON Schema
types Cedar has: strings, integers, booleans; each optional, since a call may leave one out).
The policy file permits each listed tool to everyone, with its arguments in a comment: what the
scopes allow today, to narrow from (`mcp-oauth-middleware cedar-init`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["starting_files"]

_CEDAR_TYPES = {"string": "String", "integer": "Long", "boolean": "Boolean"}
_STRINGS = {"type": "Set", "element": {"type": "String"}}
_CALLER = {
    "type": "Record",
    "attributes": {
        "sub": {"type": "String"},
        "client_id": {"type": "String"},
        "scopes": _STRINGS,
        "issuer": {"type": "String"},
        "roles": _STRINGS,
        "groups": _STRINGS,
    },
}


def starting_files(
    tools: Sequence[Mapping[str, Any]], namespace: str = "Mcp", source: str = ""
) -> tuple[dict[str, Any], str]:
    """The Cedar JSON schema and the policy text for `tools` (entries of a `tools/list` result)."""
    arguments: dict[str, Any] = {}
    lines = [
        f"// A starting point, from the tools {source or 'the server'} lists (mcp-oauth-middleware cedar-init).",
        "// Each tool is permitted to every caller, as its scopes allow today: narrow the rules below",
        "// (Cedar refuses whatever no permit allows). The schema beside this file types the requests.",
        "",
    ]
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str):
            continue
        properties = (tool.get("inputSchema") or {}).get("properties") or {}
        described = []
        for argument, spec in properties.items():
            kind = _CEDAR_TYPES.get(str(spec.get("type"))) if isinstance(spec, Mapping) else None
            if kind is not None and arguments.get(argument, {}).get("type", kind) == kind:
                arguments[argument] = {"type": kind, "required": False}
                described.append(f"{argument}: {kind}")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f"// {name}({', '.join(described)})")
        action, resource = f'{namespace}::Action::"tools/call"', f'{namespace}::Tool::"{quoted}"'
        lines.append(f"permit(principal, action == {action}, resource == {resource});")
        lines.append("")
    context = {
        "type": "Record",
        "attributes": {
            "client_id": {"type": "String"},
            "scopes": _STRINGS,
            "time": {"type": "Long"},
            "client_address": {"type": "String", "required": False},
            "origin": {"type": "String", "required": False},
            "arguments": {"type": "Record", "attributes": arguments, "required": False},
        },
    }
    schema = {
        namespace: {
            "entityTypes": {
                "User": {"shape": _CALLER},
                "Machine": {"shape": _CALLER},
                "Tool": {},
                "Prompt": {},
                "Resource": {},
            },
            "actions": {
                "tools/call": {
                    "appliesTo": {"principalTypes": ["User", "Machine"], "resourceTypes": ["Tool"], "context": context}
                }
            },
        }
    }
    return schema, "\n".join(lines)
