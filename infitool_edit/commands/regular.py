"""A tiny algebra of regular expressions, the material the grammar is made of.

The grammar (``grammar.py``) is written once in these terms; this module
turns an expression into the two machines that read it:

- ``to_regex`` gives a Python ``re`` pattern over characters, which the
  parser's fast path matches whole lines against;
- ``ByteNFA`` gives a byte-level automaton (UTF-8 spelled out), which
  ``fsm.py`` determinizes into the constrained decoder's table and which the
  parser walks to say *where* a bad line went wrong.

Every character class and literal carries a ``label``: what a writer is told
was expected when the line stops matching there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Chars:
    """One character: any of ``ascii``, and when ``non_ascii`` is set also
    any non-ASCII character (every Unicode scalar value from U+0080 up;
    surrogates are not characters and never match)."""

    ascii: str
    label: str
    non_ascii: bool = False


@dataclass(frozen=True)
class Literal:
    """Exactly this ASCII text."""

    text: str
    label: str


@dataclass(frozen=True)
class Seq:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Choice:
    options: tuple[Expr, ...]


@dataclass(frozen=True)
class Repeat:
    """``item`` at least ``min`` and at most ``max`` times (None: no bound)."""

    item: Expr
    min: int
    max: int | None


Expr = Union[Chars, Literal, Seq, Choice, Repeat]


def seq(*parts: Expr) -> Seq:
    return Seq(tuple(parts))


def choice(*options: Expr) -> Choice:
    return Choice(tuple(options))


# --- characters -> regular expressions ------------------------------------
# The text is written in the subset of syntax that Python's ``re`` and Rust's
# ``regex`` crate read alike (the latter is what llguidance and vLLM's
# structured outputs take), so the same pattern can hold a BPE model served
# elsewhere to this grammar.

# Every scalar value above ASCII, skipping the surrogates U+D800..U+DFFF
# (a Python str may hold them, but they have no UTF-8 spelling).
_NON_ASCII_CLASS = "\\u0080-\\ud7ff\\ue000-\\U0010ffff"
# Characters both dialects treat as syntax somewhere; escaped everywhere.
_META = set("\\.+*?()|[]{}^$#&-~")


def _escape(char: str) -> str:
    if char in _META:
        return "\\" + char
    if not 0x20 <= ord(char) < 0x7F:
        return f"\\x{ord(char):02x}"
    return char


def _char_class(chars: Chars) -> str:
    body = "".join(_escape(c) for c in sorted(set(chars.ascii)))
    if chars.non_ascii:
        body += _NON_ASCII_CLASS
    return f"[{body}]"


def to_regex(expr: Expr) -> str:
    """A regular expression for ``expr`` that Python's ``re`` (str patterns)
    and Rust's ``regex`` both read; it uses only non-capturing groups, so
    callers may wrap it in capturing ones."""
    if isinstance(expr, Chars):
        return _char_class(expr)
    if isinstance(expr, Literal):
        return "".join(_escape(c) for c in expr.text)
    if isinstance(expr, Seq):
        return "".join(to_regex(part) for part in expr.parts)
    if isinstance(expr, Choice):
        return "(?:" + "|".join(to_regex(option) for option in expr.options) + ")"
    if isinstance(expr, Repeat):
        bounds = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((expr.min, expr.max))
        if bounds is None:
            upper = "" if expr.max is None else str(expr.max)
            bounds = f"{{{expr.min},{upper}}}"
        return f"(?:{to_regex(expr.item)}){bounds}"
    raise TypeError(f"not a grammar expression: {expr!r}")


# --- characters -> a byte-level NFA ----------------------------------------

UTF8_LABEL = "valid UTF-8"


class ByteNFA:
    """A nondeterministic automaton over bytes with ε-moves. States are ints;
    ``edges[s]`` lists ``(bytes admitted, target, label index)``."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[frozenset[int], int, int]]] = []
        self.epsilon: list[list[int]] = []
        self.labels: list[str] = []
        self._label_index: dict[str, int] = {}

    def new_state(self) -> int:
        self.edges.append([])
        self.epsilon.append([])
        return len(self.edges) - 1

    def label(self, text: str) -> int:
        if text not in self._label_index:
            self._label_index[text] = len(self.labels)
            self.labels.append(text)
        return self._label_index[text]

    def add_edge(self, source: int, byte_values, target: int, label: str) -> None:
        self.edges[source].append((frozenset(byte_values), target, self.label(label)))

    def add(self, expr: Expr, source: int, target: int) -> None:
        """Wire ``expr`` so that reading it leads from ``source`` to ``target``."""
        if isinstance(expr, Chars):
            ascii_bytes = {ord(c) for c in expr.ascii}
            if ascii_bytes:
                self.add_edge(source, ascii_bytes, target, expr.label)
            if expr.non_ascii:
                self._add_utf8_non_ascii(source, target, expr.label)
        elif isinstance(expr, Literal):
            data = expr.text.encode("ascii")
            state = source
            for index, byte in enumerate(data):
                after = target if index == len(data) - 1 else self.new_state()
                self.add_edge(state, {byte}, after, expr.label)
                state = after
            if not data:
                self.epsilon[source].append(target)
        elif isinstance(expr, Seq):
            state = source
            for index, part in enumerate(expr.parts):
                after = target if index == len(expr.parts) - 1 else self.new_state()
                self.add(part, state, after)
                state = after
            if not expr.parts:
                self.epsilon[source].append(target)
        elif isinstance(expr, Choice):
            for option in expr.options:
                self.add(option, source, target)
        elif isinstance(expr, Repeat):
            state = source
            for _ in range(expr.min):
                after = self.new_state()
                self.add(expr.item, state, after)
                state = after
            if expr.max is None:
                loop = self.new_state()
                self.epsilon[state].append(loop)
                self.add(expr.item, loop, loop)
                self.epsilon[loop].append(target)
            else:
                for _ in range(expr.max - expr.min):
                    after = self.new_state()
                    self.epsilon[state].append(target)
                    self.add(expr.item, state, after)
                    state = after
                self.epsilon[state].append(target)
        else:
            raise TypeError(f"not a grammar expression: {expr!r}")

    def _add_utf8_non_ascii(self, source: int, target: int, label: str) -> None:
        # The well-formed UTF-8 sequences of U+0080..U+10FFFF without the
        # surrogates (Unicode table 3-7): no overlong forms, nothing above
        # U+10FFFF -- exactly what Python's strict decoder accepts.
        tail = range(0x80, 0xC0)
        one_left = self.new_state()
        self.add_edge(one_left, tail, target, UTF8_LABEL)
        two_left = self.new_state()
        self.add_edge(two_left, tail, one_left, UTF8_LABEL)
        three_left = self.new_state()
        self.add_edge(three_left, tail, two_left, UTF8_LABEL)

        def lead(first, second_range, then):
            middle = self.new_state()
            self.add_edge(source, first, middle, label)
            self.add_edge(middle, second_range, then, UTF8_LABEL)

        self.add_edge(source, range(0xC2, 0xE0), one_left, label)
        lead({0xE0}, range(0xA0, 0xC0), one_left)
        self.add_edge(source, [*range(0xE1, 0xED), 0xEE, 0xEF], two_left, label)
        lead({0xED}, range(0x80, 0xA0), one_left)
        lead({0xF0}, range(0x90, 0xC0), two_left)
        self.add_edge(source, range(0xF1, 0xF4), three_left, label)
        lead({0xF4}, range(0x80, 0x90), two_left)

    def closure(self, states) -> frozenset[int]:
        seen = set(states)
        stack = list(states)
        while stack:
            for nxt in self.epsilon[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)


# --- characters -> GBNF ------------------------------------------------------
# llama.cpp's grammar format (grammars/README.md in its source). Its grammars
# read Unicode code points, as Python's ``re`` does, so a class spells the
# same set as in ``to_regex``. Its parser knows only the escapes \x \u \U \t
# \r \n \\ \" \[ \]; "-" and "^" inside a class (a range, a negation) and
# every other non-printable character are written as \xHH.

_GBNF_NON_ASCII = "\\u0080-\\uD7FF\\uE000-\\U0010FFFF"


def _gbnf_escape(char: str, *, in_class: bool) -> str:
    if char in '"\\' or (in_class and char in "[]"):
        return "\\" + char
    if (in_class and char in "-^") or not 0x20 <= ord(char) < 0x7F:
        return f"\\x{ord(char):02X}"
    return char


def to_gbnf(expr: Expr, rules: dict[Expr, str] | None = None) -> str:
    """``expr`` as the right-hand side of a GBNF rule; a sub-expression found in
    ``rules`` is written as a reference to the rule of that name."""
    rules = rules or {}
    if expr in rules:
        return rules[expr]
    if isinstance(expr, Chars):
        body = "".join(_gbnf_escape(c, in_class=True) for c in sorted(set(expr.ascii)))
        return f"[{body}{_GBNF_NON_ASCII if expr.non_ascii else ''}]"
    if isinstance(expr, Literal):
        return '"' + "".join(_gbnf_escape(c, in_class=False) for c in expr.text) + '"'
    if isinstance(expr, Seq):
        return " ".join(to_gbnf(part, rules) for part in expr.parts) or '""'
    if isinstance(expr, Choice):
        return "(" + " | ".join(to_gbnf(option, rules) for option in expr.options) + ")"
    if isinstance(expr, Repeat):
        bounds = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((expr.min, expr.max))
        if bounds is None:
            bounds = f"{{{expr.min},{'' if expr.max is None else expr.max}}}"
        return f"({to_gbnf(expr.item, rules)}){bounds}"
    raise TypeError(f"not a grammar expression: {expr!r}")
