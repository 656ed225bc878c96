"""Random commands, for property tests, benchmarks and training data.

``random_command(rng)`` walks the grammar: it picks a form, then for each
slot one of the kinds it admits, then a value of that kind. So a verb or an
address kind added to the grammar is generated without touching this file,
as long as its kind has a value maker below. Values are syntactically valid
(they serialize), not necessarily meaningful for any draft: line 9000 of a
ten-line draft is fine here.

``commands()`` is the same generator as a Hypothesis strategy (Hypothesis
drives the ``Random`` it passes in, so failures shrink). Hypothesis is only
imported when that function is called.
"""

from __future__ import annotations

import random
from typing import Callable

from infitool_edit.commands import ast, grammar
from infitool_edit.commands.ast import Command

_WORDS = (
    "the", "lamp", "keeper", "wind", "rising", "glass", "falling", "Teh", "log",
    "books", "winter", "a", "of", "and", "October", "1987", "Carrow", "Point",
)
# Pieces that stress the quoting: escapes, quotes, non-ASCII of every UTF-8
# length, and text that looks like other tokens.
_ODD_PIECES = (
    "\n", "\t", '"', "\\", "\\n", '\\"', " ", "  ", "é", "—", "中文", "🙂", "//",
    "#intro", "$", "12:5", "v3", "'", "\u00a0", "\u2028",
)
_SLUG_WORDS = ("intro", "method", "the-autumn-gales", "winter", "summer", "café", "part_2", "über", "2026", "a")


def random_number(rng: random.Random) -> int:
    if rng.random() < 0.9:
        return rng.randint(1, 200)
    return rng.randint(1, 10**grammar.NUMBER_MAX_DIGITS - 1)


def random_text(rng: random.Random, *, nonempty: bool = True) -> str:
    pieces = []
    for _ in range(rng.randint(1 if nonempty else 0, 8)):
        if rng.random() < 0.7:
            pieces.append(rng.choice(_WORDS) + rng.choice(("", " ", ", ", ". ")))
        else:
            pieces.append(rng.choice(_ODD_PIECES))
    return "".join(pieces)


def random_slug(rng: random.Random) -> str:
    return rng.choice(_SLUG_WORDS)


def _point(rng: random.Random) -> ast.Point:
    return ast.Point(random_number(rng), random_number(rng))


def _ordered(rng: random.Random, maker):
    # Mostly forward ranges, as a writer writes them; sometimes reversed, which
    # the grammar admits (only applying them can tell they are empty).
    first, second = maker(rng), maker(rng)
    return (first, second) if rng.random() < 0.2 else tuple(sorted((first, second), key=_order_key))


def _order_key(value):
    return (value.line, value.col) if isinstance(value, ast.Point) else value


_VALUE_MAKERS: dict[str, Callable[[random.Random], object]] = {
    "line": lambda rng: ast.Line(random_number(rng)),
    "point": _point,
    "line range": lambda rng: ast.LineRange(*_ordered(rng, random_number)),
    "span": lambda rng: ast.Span(*_ordered(rng, _point)),
    "heading": lambda rng: ast.Heading(tuple(random_slug(rng) for _ in range(rng.randint(1, 3)))),
    "search": lambda rng: ast.Search(random_text(rng)),
    "end": lambda rng: ast.End(),
    "version": lambda rng: ast.VersionRef(random_number(rng)),
    "checkpoint": lambda rng: ast.CheckpointRef(random_text(rng)),
    "text": lambda rng: random_text(rng, nonempty=False),
    "nonempty text": lambda rng: random_text(rng),
}


def random_command(rng: random.Random, *, verbs: tuple[str, ...] = grammar.VERBS) -> Command:
    """A random command of one of ``verbs`` (all by default)."""
    verb = rng.choice(verbs)
    form = rng.choice(grammar.FORMS_BY_VERB[verb])
    values = {}
    for slot in form.slots:
        kind = rng.choice(slot.kinds)
        values[slot.field] = _VALUE_MAKERS[kind.name](rng)
    return form.command(**values)


def commands(verbs: tuple[str, ...] = grammar.VERBS):
    """A Hypothesis strategy of commands (see ``random_command``)."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(lambda rng: random_command(rng, verbs=verbs))
