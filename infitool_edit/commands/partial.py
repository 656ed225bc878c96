"""Reading an ``insert`` command while the model is still typing it.

The editor shows an insert's text appearing at its place token by token,
before the command is complete and applied. This reads a partial command
line just far enough to know where the text goes and how much of it has
been typed, with the grammar's own address kinds and escapes (the applied
command's ``TextEdit`` then replaces what was shown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infitool_edit.commands import ast, grammar
from infitool_edit.commands.regular import to_regex

_INSERT = grammar.FORMS_BY_VERB["insert"][0]
_ADDRESS_KINDS = _INSERT.slots[0].kinds
# `insert ADDRESS "`: the head of an insert whose text has begun.
_HEAD = re.compile(
    "insert (?:" + "|".join(f"({to_regex(kind.shape)})" for kind in _ADDRESS_KINDS) + ') "'
)


@dataclass(frozen=True)
class PartialInsert:
    """Where a partly typed insert goes, and the text typed so far."""

    at: ast.PointAddress
    text: str


def read_partial_insert(line: str) -> PartialInsert | None:
    """The typed part of ``insert ADDRESS "text…``, or None for other commands."""
    head = _HEAD.match(line)
    if head is None:
        return None
    kind, token = next(
        (kind, head.group(number))
        for number, kind in enumerate(_ADDRESS_KINDS, 1)
        if head.group(number) is not None
    )
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
            text.append(grammar.ESCAPES.get(rest[i + 1], rest[i + 1]))
            i += 2
            continue
        text.append(char)
        i += 1
    return PartialInsert(kind.decode(token), "".join(text))
