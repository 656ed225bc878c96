"""Markdown highlighting one line at a time.

Highlighting works on a single line plus one bit of context (is the line
inside a fenced code block), so the editor can highlight only the lines it
shows and cache them by content: an edit invalidates nothing but the lines
whose text changed. Spans name styles (``heading``, ``strong`` …) that the
editor maps to its theme's component classes.
"""

from __future__ import annotations

import re
from functools import lru_cache

Span = tuple[int, int, str]

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:\s|$)")
_QUOTE = re.compile(r"^ {0,3}>")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
_RULE = re.compile(r"^ {0,3}(?:(?:-\s*){3,}|(?:\*\s*){3,}|(?:_\s*){3,})$")
_INLINE = re.compile(
    r"(?P<code>`[^`]+`)"
    r"|(?P<strong>\*\*[^*\s](?:[^*]*[^*\s])?\*\*|__[^_\s](?:[^_]*[^_\s])?__)"
    r"|(?P<emphasis>\*[^*\s](?:[^*]*[^*\s])?\*|(?<!\w)_[^_\s](?:[^_]*[^_\s])?_(?!\w))"
    r"|(?P<link>!?\[[^\]]*\]\([^)]*\))"
)


@lru_cache(maxsize=8192)
def highlight_line(line: str, in_code_block: bool) -> tuple[Span, ...]:
    """Style spans (start, end, name) for one line of markdown."""
    if line.lstrip(" ").startswith(("```", "~~~")) or in_code_block:
        return ((0, len(line), "code"),) if line else ()
    if heading := _HEADING.match(line):
        return ((0, len(line), f"heading{len(heading.group(1))}"),)
    if _RULE.match(line):
        return ((0, len(line), "rule"),)
    spans: list[Span] = []
    if _QUOTE.match(line):
        spans.append((0, len(line), "quote"))
    elif marker := _LIST_MARKER.match(line):
        spans.append((0, marker.end(), "list"))
    for match in _INLINE.finditer(line):
        spans.append((match.start(), match.end(), match.lastgroup or "code"))
    return tuple(spans)
