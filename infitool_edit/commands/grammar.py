"""The command language, written down once, as data.

A command line is a verb followed by its arguments, each after exactly one
space; nothing trails. Each verb has one or more *forms* (the argument slots
in order); each slot admits some *token kinds* (line, point, heading, quoted
string, ...); each token kind has a *shape* written in the small algebra of
``regular.py``. From this one description come:

- the parser (``parser.py``: a regular expression per form, plus the
  byte automaton that says where a bad line went wrong),
- the serializer (``serializer.py``: a form per command, an encoder per kind),
- the byte-level DFA of the constrained decoder (``fsm.py``), one
  regular expression for decoders elsewhere (``command_regex``: llguidance,
  vLLM) and a GBNF grammar for llama.cpp's server (``command_gbnf``),
- the checks that ``docs/commands.md`` shows every verb,
- the generator of random commands (``generate.py``).

The language is regular on purpose (no nesting), so that a finite-state mask
can hold a byte-level model to it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Callable

from infitool_edit.commands import ast
from infitool_edit.commands.regular import Chars, Choice, Expr, Literal, Repeat, choice, seq, to_gbnf, to_regex

# --- token shapes ------------------------------------------------------------

# Numbers are 1-based and bounded: nine digits address any draft a person can
# write, and a bound keeps a model from running away in a digit loop (and
# every number inside what Python converts without a digit limit).
NUMBER_MAX_DIGITS = 9

# The escapes a quoted string may use, and what each stands for. Nothing else
# may follow a backslash; no other control character may appear raw.
ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}

# ASCII characters that stand for themselves inside quotes: printable ones
# except the quote and the backslash. (Every non-ASCII character does too.)
STRING_ASCII = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\')

# Characters of a heading slug: lower-case ASCII letters, digits, "-", "_",
# and any non-ASCII character (letters of other scripts).
SLUG_ASCII = "abcdefghijklmnopqrstuvwxyz0123456789-_"

SPACE = Literal(" ", "a space")


def number(label: str) -> Expr:
    return seq(
        Chars("123456789", label),
        Repeat(Chars("0123456789", "a digit"), 0, NUMBER_MAX_DIGITS - 1),
    )


def quoted(opening_label: str, *, nonempty: bool) -> Expr:
    character = choice(
        Chars(STRING_ASCII, "text", non_ascii=True),
        seq(Literal("\\", "text"), Chars("".join(ESCAPES), 'an escape (\\n, \\t, \\" or \\\\)')),
    )
    return seq(
        Literal('"', opening_label),
        Repeat(character, 1 if nonempty else 0, None),
        Literal('"', "a closing quote"),
    )


_point_shape = seq(number("a line number"), Literal(":", "`:`"), number("a column number"))
_slug = Repeat(Chars(SLUG_ASCII, "a slug character (a-z, 0-9, -, _)", non_ascii=True), 1, None)


# --- token kinds ---------------------------------------------------------------


@dataclass(frozen=True)
class TokenKind:
    """One kind of argument: its shape, the Python value it stands for, and
    the two conversions between its text and that value."""

    name: str
    description: str  # for error messages and docs: "a line number N"
    shape: Expr
    value_type: type
    decode: Callable[[str], object]  # only ever called on text of `shape`
    encode: Callable[[object], str]  # may produce text not of `shape`: check it


def unquote(token: str) -> str:
    body = token[1:-1]
    if "\\" not in body:
        return body
    parts = body.split("\\\\")  # an escaped backslash never starts an escape
    return "\\".join(
        part.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t") for part in parts
    )


def quote(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError("not a string")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _decode_point(token: str) -> ast.Point:
    line, col = token.split(":")
    return ast.Point(int(line), int(col))


def _span(token: str) -> ast.Span:
    start, end = token.split("-")
    return ast.Span(_decode_point(start), _decode_point(end))


def _line_range(token: str) -> ast.LineRange:
    start, end = token.split("-")
    return ast.LineRange(int(start), int(end))


LINE = TokenKind(
    "line", "a line number N", number("a line number"), ast.Line,
    lambda t: ast.Line(int(t)), lambda v: str(v.line),
)
POINT = TokenKind(
    "point", "a point N:C", _point_shape, ast.Point,
    _decode_point, lambda v: f"{v.line}:{v.col}",
)
LINE_RANGE = TokenKind(
    "line range", "a line range N-M",
    seq(number("a line number"), Literal("-", "`-`"), number("a line number")), ast.LineRange,
    _line_range, lambda v: f"{v.start}-{v.end}",
)
SPAN = TokenKind(
    "span", "a span N:C-M:C", seq(_point_shape, Literal("-", "`-`"), _point_shape), ast.Span,
    _span, lambda v: f"{v.start.line}:{v.start.col}-{v.end.line}:{v.end.col}",
)
HEADING = TokenKind(
    "heading", "a heading path #slug/slug",
    seq(Literal("#", "a heading (#slug)"), _slug, Repeat(seq(Literal("/", "`/`"), _slug), 0, None)),
    ast.Heading,
    lambda t: ast.Heading(tuple(t[1:].split("/"))), lambda v: "#" + "/".join(v.path),
)
SEARCH = TokenKind(
    "search", 'a search string "text"', quoted("a quoted search string", nonempty=True), ast.Search,
    lambda t: ast.Search(unquote(t)), lambda v: quote(v.text),
)
END = TokenKind(
    "end", "the end of the draft $", Literal("$", "`$` (the end)"), ast.End,
    lambda t: ast.End(), lambda v: "$",
)
VERSION = TokenKind(
    "version", "a version vN", seq(Literal("v", "a version (vN)"), number("a version number")),
    ast.VersionRef,
    lambda t: ast.VersionRef(int(t[1:])), lambda v: f"v{v.number}",
)
CHECKPOINT_NAME = TokenKind(
    "checkpoint", 'a checkpoint name "name"', quoted("a quoted checkpoint name", nonempty=True),
    ast.CheckpointRef,
    lambda t: ast.CheckpointRef(unquote(t)), lambda v: quote(v.name),
)
TEXT = TokenKind(
    "text", 'a quoted string "text"', quoted("a quoted string", nonempty=False), str,
    unquote, quote,
)
NONEMPTY_TEXT = TokenKind(
    "nonempty text", 'a non-empty quoted string "text"', quoted("a quoted string", nonempty=True), str,
    unquote, quote,
)

POINT_KINDS = (LINE, POINT, HEADING, SEARCH, END)
RANGE_KINDS = (LINE, LINE_RANGE, SPAN, HEADING, SEARCH)
RANGE_KINDS_BUT_SEARCH = (LINE, LINE_RANGE, SPAN, HEADING)
# Where ``move`` puts text: any point but a search string. The byte mask
# holds a search string to the draft only as a verb's first argument
# (agent/constrain.py), and a model's every search string must be held.
POINT_KINDS_BUT_SEARCH = (LINE, POINT, HEADING, END)


# --- verbs and their forms -------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One argument: the command's field it fills and the kinds it admits."""

    field: str
    kinds: tuple[TokenKind, ...]
    metavar: str  # how usage lines name it: POINT, RANGE, "text"


@dataclass(frozen=True)
class Form:
    """One way to write a verb: its argument slots, in order. Fields of the
    command that no slot fills keep their defaults."""

    verb: str
    command: type
    slots: tuple[Slot, ...]

    @property
    def usage(self) -> str:
        return " ".join([self.verb, *(slot.metavar for slot in self.slots)])


def _form(verb: str, command: type, *slots: Slot) -> Form:
    return Form(verb, command, tuple(slots))


_insert_at = Slot("at", POINT_KINDS, "POINT")

FORMS: tuple[Form, ...] = (
    _form("insert", ast.Insert, _insert_at, Slot("text", (NONEMPTY_TEXT,), '"text"')),
    _form("delete", ast.Delete, Slot("target", RANGE_KINDS, "RANGE")),
    # Order matters to nobody: the three forms never match the same line.
    _form("replace", ast.Replace, Slot("target", (SEARCH,), '"old"'), Slot("new", (TEXT,), '"new"')),
    _form(
        "replace", ast.Replace, Slot("target", RANGE_KINDS_BUT_SEARCH, "RANGE"),
        Slot("old", (NONEMPTY_TEXT,), '"old"'), Slot("new", (TEXT,), '"new"'),
    ),
    _form("replace", ast.Replace, Slot("target", RANGE_KINDS_BUT_SEARCH, "RANGE"), Slot("new", (TEXT,), '"new"')),
    _form("move", ast.Move, Slot("target", RANGE_KINDS, "RANGE"), Slot("to", POINT_KINDS_BUT_SEARCH, "POINT")),
    _form("jump", ast.Jump, Slot("to", POINT_KINDS, "POINT")),
    _form("find", ast.Find, Slot("text", (NONEMPTY_TEXT,), '"text"')),
    _form("check", ast.Check),
    _form("check", ast.Check, Slot("target", RANGE_KINDS, "RANGE")),
    _form("fix", ast.Fix),
    _form("fix", ast.Fix, Slot("target", RANGE_KINDS, "RANGE")),
    _form("outline", ast.Outline),
    _form("read", ast.Read),
    _form("read", ast.Read, Slot("target", RANGE_KINDS, "RANGE")),
    _form("note", ast.Note, Slot("text", (NONEMPTY_TEXT,), '"text"')),
    _form("notes", ast.Notes),
    _form("notes", ast.Notes, Slot("text", (TEXT,), '"text"')),
    _form("goal", ast.Goal),
    _form("history", ast.History),
    _form("checkpoint", ast.Checkpoint, Slot("name", (NONEMPTY_TEXT,), '"name"')),
    _form("rewind", ast.Rewind, Slot("to", (VERSION, CHECKPOINT_NAME), 'vN|"name"')),
    _form("done", ast.Done, Slot("summary", (TEXT,), '"summary"')),
)

VERBS: tuple[str, ...] = tuple(dict.fromkeys(form.verb for form in FORMS))

FORMS_BY_VERB: dict[str, tuple[Form, ...]] = {
    verb: tuple(form for form in FORMS if form.verb == verb) for verb in VERBS
}
FORMS_BY_COMMAND: dict[type, tuple[Form, ...]] = {
    form.command: tuple(f for f in FORMS if f.command is form.command) for form in FORMS
}


def slot_shape(slot: Slot) -> Expr:
    return choice(*(kind.shape for kind in slot.kinds))


def form_tail(form: Form) -> Expr:
    """What follows the verb in this form: each argument after one space."""
    return seq(*(seq(SPACE, slot_shape(slot)) for slot in form.slots))


def language() -> Choice:
    """Every command line, as one expression (without the final newline)."""
    return choice(*(
        seq(Literal(verb, f"`{verb}`"), choice(*(form_tail(form) for form in FORMS_BY_VERB[verb])))
        for verb in VERBS
    ))


def command_regex() -> str:
    """Every command line as one regular expression, in syntax that Rust's
    ``regex`` reads as well as Python's ``re``: hand it to llguidance
    (``grammar_from("regex", ...)``) or to a server's structured outputs to
    hold a BPE model to the same language as the byte DFA."""
    return to_regex(language())


TOKEN_KINDS: tuple[TokenKind, ...] = (
    LINE, POINT, LINE_RANGE, SPAN, HEADING, SEARCH, END, VERSION, CHECKPOINT_NAME, TEXT, NONEMPTY_TEXT,
)


def command_gbnf() -> str:
    """Every command line as a GBNF grammar (llama.cpp's ``grammar`` field):
    ``root`` is a command line without its newline, one rule per verb and per
    token kind, so a person can read what the server was held to."""
    kind_rules = {kind.shape: kind.name.replace(" ", "-") for kind in TOKEN_KINDS}
    lines = ["root ::= " + " | ".join(f"{verb}-command" for verb in VERBS)]
    for verb in VERBS:
        tails = choice(*(form_tail(form) for form in FORMS_BY_VERB[verb]))
        lines.append(f"{verb}-command ::= {to_gbnf(Literal(verb, verb))} {to_gbnf(tails, kind_rules)}")
    for shape, name in kind_rules.items():
        lines.append(f"{name} ::= {to_gbnf(shape)}")
    return "\n".join(lines) + "\n"


# --- heading slugs ---------------------------------------------------------


def slugify(title: str) -> str:
    """The slug a heading is addressed by: lower case, each space a ``-``,
    punctuation other than ``-`` and ``_`` dropped (letters, marks and digits
    of every script are kept). ``The Lighthouse Keeper's Year`` becomes
    ``the-lighthouse-keepers-year``. The document engine names headings with
    this same function, so an address the model reads in an outline is the
    address it can write back."""
    kept = []
    for char in title.strip().lower():
        if char.isspace():
            kept.append("-")
        elif char in SLUG_ASCII:
            kept.append(char)
        elif not char.isascii() and unicodedata.category(char)[0] in "LMN":
            kept.append(char)
    return "".join(kept)
