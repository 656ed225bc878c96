"""Reading an ``insert`` command while the model is still typing it.

The editor shows an insert's text appearing at its place token by token,
before the command is complete and applied. This module reads a partial
command line just far enough to know where the text goes and how much of it
has been typed; the applied command's ``TextEdit`` then replaces the ghost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Addresses the view can place without the document engine: a point, a whole
# line, the end. Other addresses (#heading, "search") show at the model cursor.
_INSERT_HEAD = re.compile(r'insert (?:(?P<line>\d+)(?::(?P<col>\d+))?|(?P<end>\$)|\S+|"(?:[^"\\]|\\.)*") "')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class PartialInsert:
    """Where a partly typed insert goes (0-based; None: the model's cursor
    or the end) and the text typed so far."""

    line: int | None
    col: int | None
    at_end: bool
    text: str


def read_partial_insert(line: str) -> PartialInsert | None:
    """The typed part of ``insert ADDRESS "text…`` or None for other commands."""
    head = _INSERT_HEAD.match(line)
    if head is None:
        return None
    text: list[str] = []
    rest = line[head.end():]
    i = 0
    while i < len(rest):
        char = rest[i]
        if char == '"':
            break
        if char == "\\":
            if i + 1 == len(rest):
                break  # the escape's second half has not been typed yet
            text.append(_ESCAPES.get(rest[i + 1], rest[i + 1]))
            i += 2
            continue
        text.append(char)
        i += 1
    line_number = head.group("line")
    col = head.group("col")
    return PartialInsert(
        line=int(line_number) - 1 if line_number else None,
        col=int(col) - 1 if col else (0 if line_number else None),
        at_end=head.group("end") is not None,
        text="".join(text),
    )
