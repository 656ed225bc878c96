"""The command language: parse, serialize, errors, scripts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infitool_edit.commands import (
    CommandError, parse, parse_script, script_lines, serialize, slugify,
)
from infitool_edit.commands import ast
from infitool_edit.commands.generate import commands, random_command
from infitool_edit.commands.grammar import NUMBER_MAX_DIGITS, SLUG_ASCII, VERBS


# --- what lines mean ---------------------------------------------------------

MEANINGS = [
    ('insert 12:5 "text"', ast.Insert(ast.Point(12, 5), "text")),
    ('insert $ "a\\nb"', ast.Insert(ast.End(), "a\nb")),
    ('insert #winter "x"', ast.Insert(ast.Heading(("winter",)), "x")),
    ('insert "Glass falling." " Wind"', ast.Insert(ast.Search("Glass falling."), " Wind")),
    ("delete 12-14", ast.Delete(ast.LineRange(12, 14))),
    ("delete 3:1-4:2", ast.Delete(ast.Span(ast.Point(3, 1), ast.Point(4, 2)))),
    ('delete "very "', ast.Delete(ast.Search("very "))),
    ('replace 13 "Teh" "The"', ast.Replace(ast.Line(13), "The", old="Teh")),
    ('replace 13:1-13:4 "The"', ast.Replace(ast.Span(ast.Point(13, 1), ast.Point(13, 4)), "The")),
    ('replace "Teh" "The"', ast.Replace(ast.Search("Teh"), "The")),
    ('replace #summer ""', ast.Replace(ast.Heading(("summer",)), "")),
    ("move #winter #summer", ast.Move(ast.Heading(("winter",)), ast.Heading(("summer",)))),
    ("move 3-6 $", ast.Move(ast.LineRange(3, 6), ast.End())),
    ('move "Calm. " 21:1', ast.Move(ast.Search("Calm. "), ast.Point(21, 1))),
    ("jump #the-lighthouse-keepers-year/introduction",
     ast.Jump(ast.Heading(("the-lighthouse-keepers-year", "introduction")))),
    ('find "lamp"', ast.Find("lamp")),
    ("outline", ast.Outline()),
    ("check", ast.Check()),
    ('check "teh lamp"', ast.Check(ast.Search("teh lamp"))),
    ("fix", ast.Fix()),
    ("fix 12", ast.Fix(ast.Line(12))),
    ("fix 12-40", ast.Fix(ast.LineRange(12, 40))),
    ("read", ast.Read()),
    ("read 12-40", ast.Read(ast.LineRange(12, 40))),
    ("read #café", ast.Read(ast.Heading(("café",)))),
    ('note "say \\"why\\"\\t\\\\"', ast.Note('say "why"\t\\')),
    ("notes", ast.Notes()),
    ("goal", ast.Goal()),
    ("history", ast.History()),
    ('checkpoint "draft one"', ast.Checkpoint("draft one")),
    ("rewind v17", ast.Rewind(ast.VersionRef(17))),
    ('rewind "draft one"', ast.Rewind(ast.CheckpointRef("draft one"))),
    ('done "Fixed typos."', ast.Done("Fixed typos.")),
    ('done ""', ast.Done("")),
    ('note "🙂 — 中文"', ast.Note("🙂 — 中文")),
    # Reversed ranges are well formed; only applying them can refuse them.
    ("read 14-12", ast.Read(ast.LineRange(14, 12))),
    ("read " + "9" * NUMBER_MAX_DIGITS, ast.Read(ast.Line(int("9" * NUMBER_MAX_DIGITS)))),
]


@pytest.mark.parametrize("line,command", MEANINGS)
def test_a_line_means_its_command_and_is_written_back_the_same(line, command):
    assert parse(line) == command
    assert parse(line.encode()) == command
    assert serialize(command) == line


def test_every_verb_has_a_meaning_above():
    assert {line.split(" ")[0] for line, _ in MEANINGS} == set(VERBS)


# --- errors: where and what ------------------------------------------------

ERRORS = [
    ("", 1, "`insert`, `delete`"),
    ("inzert 1 \"a\"", 3, "`insert`"),
    ("Outline", 1, "`outline`"),
    ("outline x", 8, "end of line"),
    ("insert", 7, "a space"),
    ('insert  1 "a"', 8, "a line number, a heading (#slug), a quoted search string or `$` (the end)"),
    ('insert 0 "a"', 8, "a line number"),
    ("insert 1 a", 10, "a quoted string"),
    ('insert 1 "a', 12, "text or a closing quote"),
    ('insert 1 ""', 11, "text"),
    ('insert 1 "a" ', 13, "end of line"),
    ('insert 1 "a\\x"', 13, "an escape"),
    ('insert 1:0 "a"', 10, "a column number"),
    ('insert 1 "a\tb"', 12, "control characters are written"),
    ("delete $", 8, "a line number"),
    ("delete 3:4", 11, "a digit or `-`"),
    ("jump 1-2", 7, "a digit, `:` or end of line"),
    ("read 12 ", 8, "end of line"),
    ("read 1" + "0" * NUMBER_MAX_DIGITS, 6 + NUMBER_MAX_DIGITS, "`:`, `-` or end of line"),
    ("read #", 7, "a slug character"),
    ("read #a/", 9, "a slug character"),
    ("read #a//b", 9, "a slug character"),
    ("read #Intro", 7, "a slug character"),
    ("rewind 17", 8, "a version (vN) or a quoted checkpoint name"),
    ("rewind v0", 9, "a version number"),
    ('replace "a" "b" "c"', 16, "end of line"),
    ('replace 3 "" "x"', 13, "end of line"),
    ('find ""', 7, "text"),
    ('note "café" x', 12, "end of line"),
    ("note", 5, "`notes` or a space"),
    ('done "ok"\n', 10, "end of line"),
]


@pytest.mark.parametrize("line,column,expected", ERRORS)
def test_an_error_names_the_column_and_what_was_expected(line, column, expected):
    with pytest.raises(CommandError) as caught:
        parse(line)
    error = caught.value
    assert error.column == column, str(error)
    assert expected in error.expected
    assert str(error) == f"column {column}: expected {error.expected}"
    assert "\n" not in str(error)


def test_the_error_format_is_one_line():
    with pytest.raises(CommandError) as caught:
        parse("insert 8 x")
    assert str(caught.value) == "column 10: expected a quoted string"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("data,column", [
    (b'note "caf\xc3\xa9\xff"', 11),
    (b'note "\xc3\x28"', 7),
    (b"\xff", 1),
    (b'note "\xed\xa0\x80"', 7),  # an encoded surrogate is not UTF-8
    (b'note "\xc0\xaf"', 7),  # nor an overlong slash
    (b'note "\x80"', 7),  # a stray continuation byte is a column of its own
    (b"not\x80", 4),
])
def test_bytes_that_are_not_utf8_fail_at_the_bad_byte(data, column):
    with pytest.raises(CommandError) as caught:
        parse(data)
    assert caught.value.column == column
    assert caught.value.expected == "valid UTF-8"


def test_an_earlier_grammar_error_wins_over_bad_utf8_later():
    with pytest.raises(CommandError) as caught:
        parse(b'nope "\xff"')
    assert caught.value.column == 3


def test_a_lone_surrogate_in_a_str_is_an_error_at_its_column():
    with pytest.raises(CommandError) as caught:
        parse('note "ab\ud800"')
    assert caught.value.column == 9


# --- serialize -------------------------------------------------------------

UNWRITABLE = [
    ast.Delete(ast.Line(0)),
    ast.Delete(ast.Line(10**NUMBER_MAX_DIGITS)),
    ast.Delete(ast.Line(10**5000)),  # beyond Python's int-to-str limit
    ast.Insert(ast.Point(1, 0), "x"),
    ast.Insert(ast.Line(1), ""),
    ast.Insert(ast.Line(1), "a\rb"),
    ast.Insert(ast.Line(1), "a\ud800"),
    ast.Insert(ast.LineRange(1, 2), "x"),  # a range where a point belongs
    ast.Delete(ast.End()),
    ast.Delete(ast.Search("")),
    ast.Read(ast.Heading(())),
    ast.Read(ast.Heading(("Intro",))),
    ast.Read(ast.Heading(("a b",))),
    ast.Read(ast.Heading(("a/b",))),
    ast.Replace(ast.Search("a"), "b", old="c"),
    ast.Replace(ast.Line(1), "b", old=""),
    ast.Rewind(ast.CheckpointRef("")),
    ast.Find(3),
    ast.Done(None),
]


@pytest.mark.parametrize("command", UNWRITABLE)
def test_a_command_that_cannot_be_written_raises_value_error(command):
    with pytest.raises(ValueError):
        serialize(command)


def test_serialize_refuses_what_is_not_a_command():
    with pytest.raises(ValueError):
        serialize(ast.Line(3))


# --- properties ------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(commands())
def test_parse_of_serialize_is_the_identity(command):
    line = serialize(command)
    assert "\n" not in line and not line.endswith(" ")
    assert parse(line) == command
    assert parse(line.encode("utf-8")) == command


def test_random_command_is_reproducible_and_covers_every_verb():
    first = [random_command(random.Random(7)) for _ in range(3)]
    again = [random_command(random.Random(7)) for _ in range(3)]
    assert first == again
    rng = random.Random(1)
    seen = {serialize(random_command(rng)).split(" ")[0] for _ in range(2000)}
    assert seen == set(VERBS)


# --- scripts ---------------------------------------------------------------


def test_a_script_skips_blank_and_comment_lines_and_numbers_the_rest():
    script = '// fix the intro\n\noutline\r\n  // indented comment\nreplace "Teh" "The"\n   \ndone ""\n'
    assert list(script_lines(script)) == [
        (3, ast.Outline()),
        (5, ast.Replace(ast.Search("Teh"), "The")),
        (7, ast.Done("")),
    ]
    assert parse_script(script.encode()) == [cmd for _, cmd in script_lines(script)]


def test_a_script_error_names_the_script_line():
    with pytest.raises(CommandError) as caught:
        parse_script('outline\n\nread 3\njump -1\n')
    error = caught.value
    assert (error.line, error.column) == (4, 6)
    assert str(error).startswith("line 4, column 6: expected")


def test_a_script_that_is_not_utf8_names_line_and_column():
    with pytest.raises(CommandError) as caught:
        parse_script(b'outline\nnote "ab\xffc"\n')
    assert (caught.value.line, caught.value.column) == (2, 9)
    with pytest.raises(CommandError) as caught:
        parse_script(b'outline\n\x80')
    assert (caught.value.line, caught.value.column) == (2, 1)


# --- slugs -----------------------------------------------------------------


@pytest.mark.parametrize("title,slug", [
    ("The Autumn Gales", "the-autumn-gales"),
    ("The Lighthouse Keeper's Year", "the-lighthouse-keepers-year"),
    ("  Introduction ", "introduction"),
    ("Part_2: Re-reading (1987)!", "part_2-re-reading-1987"),
    ("Café Über Alles", "café-über-alles"),
    ("What?", "what"),
])
def test_slugify(title, slug):
    assert slugify(title) == slug


@given(st.text())
def test_a_nonempty_slug_is_always_addressable(title):
    slug = slugify(title)
    if slug:
        assert parse(f"read #{slug}") == ast.Read(ast.Heading((slug,)))
    assert all(c in SLUG_ASCII or not c.isascii() for c in slug)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list('ab "\\\n\r\t/#:-$v19') + ["outline", "read ", "note ", "//"])).map("".join))
def test_a_script_of_any_text_gives_commands_or_a_command_error_with_its_line(text):
    try:
        commands = parse_script(text)
    except CommandError as error:
        assert error.line is not None and 1 <= error.line <= text.count("\n") + 1
        assert str(error).startswith(f"line {error.line}, column {error.column}: expected ")
    else:
        assert all(serialize(command) for command in commands)
