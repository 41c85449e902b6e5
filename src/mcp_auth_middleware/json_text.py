"""JSON read as it was written, and written back so: what the list rewriting (listing.py) needs
to change an answer without breaking it. A document Python reads but JSON cannot hold (NaN,
Infinity, a number out of range) or nested deeper than the interpreter reads is not read at all;
a string with a lone surrogate is written back escaped, as it came."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dump_json", "load_json"]


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: Python reads it as inf, which JSON cannot write back
        raise ValueError(f"{text} is out of range")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(body: bytes) -> Any:
    """A JSON document, or None when it is not one that can be written back as it was read:
    invalid, NaN or Infinity (Python reads them, JSON has none), a number out of range, or
    nested deeper than the interpreter's recursion allows."""
    try:
        return json.loads(body, parse_float=_finite, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None


def dump_json(document: Any) -> bytes:
    """The rewritten document: UTF-8 as it came, or `\\u` escapes where a string holds a lone
    surrogate (valid JSON, which a JavaScript server emits when it cuts a string inside an
    emoji; UTF-8 cannot encode it)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(document, separators=(",", ":")).encode()
