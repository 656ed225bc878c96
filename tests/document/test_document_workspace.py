"""The workspace: every address kind and command on a small draft, errors that
change nothing, cursors, bounds, unicode and line endings."""

from __future__ import annotations

import pytest

from infitool_edit.commands import ast, parse
from infitool_edit.document import (
    MAX_FOUND,
    MAX_OBSERVATION_CHARS,
    MAX_READ_LINES,
    ApplyError,
    HeadingInfo,
    TextEdit,
    Workspace,
)

DRAFT = (
    "# Title\n"  # 1
    "\n"  # 2
    "Intro line. Teh end.\n"  # 3
    "\n"  # 4
    "## Method\n"  # 5
    "\n"  # 6
    "We measure Teh things.\n"  # 7
    "\n"  # 8
    "### Details\n"  # 9
    "Small print.\n"  # 10
    "\n"  # 11
    "## Results\n"  # 12
    "It works.\n"  # 13
)


def applied(line: str, draft: str = DRAFT, author: str = "model") -> tuple[Workspace, str]:
    workspace = Workspace(draft)
    outcome = workspace.apply(parse(line), author=author)
    return workspace, outcome.render(7)


def test_line_count_and_outline():
    workspace = Workspace(DRAFT)
    assert workspace.line_count == 13
    assert workspace.outline() == [
        HeadingInfo(1, 1, "Title", ("title",)),
        HeadingInfo(5, 2, "Method", ("title", "method")),
        HeadingInfo(9, 3, "Details", ("title", "method", "details")),
        HeadingInfo(12, 2, "Results", ("title", "results")),
    ]


# --- insert at every kind of point ----------------------------------------


@pytest.mark.parametrize(
    ("line", "expected_text", "observation"),
    [
        ('insert 3 "New. "', DRAFT.replace("Intro line.", "New. Intro line."), "@ok v7 3:6"),
        ('insert 3:7 "first "', DRAFT.replace("Intro line.", "Intro first line."), "@ok v7 3:13"),
        ('insert 14 "Tail.\\n"', DRAFT + "Tail.\n", "@ok v7 15:1"),
        ('insert #method "Added.\\n"', DRAFT.replace("## Results", "Added.\n## Results"), "@ok v7 13:1"),
        ('insert #details "X\\n"', DRAFT.replace("## Results", "X\n## Results"), "@ok v7 13:1"),
        ('insert #results "End.\\n"', DRAFT + "End.\n", "@ok v7 15:1"),
        ('insert "Teh" "!"', DRAFT.replace("Teh end", "Teh! end"), "@ok v7 3:17"),
        ('insert $ "Bye"', DRAFT + "Bye", "@ok v7 14:4"),
    ],
)
def test_insert(line, expected_text, observation):
    workspace, rendered = applied(line)
    assert workspace.text == expected_text
    assert rendered == observation


def test_insert_at_line_one_past_the_end_of_a_draft_without_final_newline():
    workspace = Workspace("one\ntwo")
    workspace.apply(ast.Insert(ast.Line(3), "!"))
    assert workspace.text == "one\ntwo!"


# --- delete and replace every kind of range ----------------------------------


@pytest.mark.parametrize(
    ("line", "expected_text"),
    [
        ("delete 3", DRAFT.replace("Intro line. Teh end.\n", "")),
        ("delete 9-10", DRAFT.replace("### Details\nSmall print.\n", "")),
        ("delete 3:1-3:7", DRAFT.replace("Intro line.", "line.")),
        ("delete 13", DRAFT.replace("It works.\n", "")),
        ("delete #method/details", DRAFT.replace("### Details\nSmall print.\n\n", "")),
        ("delete #results", DRAFT.replace("## Results\nIt works.\n", "")),
        ('delete "Teh "', DRAFT.replace("Teh end", "end")),
        ('replace 3 "Teh" "The"', DRAFT.replace("Teh end", "The end")),
        ('replace "Teh" "The"', DRAFT.replace("Teh end", "The end")),
        ('replace 7 "Teh " ""', DRAFT.replace("Teh things", "things")),
        ('replace 3:13-3:16 "The"', DRAFT.replace("Teh end", "The end")),
        ('replace 3-4 "Gone.\\n"', DRAFT.replace("Intro line. Teh end.\n\n", "Gone.\n")),
        ('replace #method/details "Small" "Fine"', DRAFT.replace("Small", "Fine")),
        ('replace #details "### Notes\\n"', DRAFT.replace("### Details\nSmall print.\n\n", "### Notes\n")),
    ],
)
def test_delete_and_replace(line, expected_text):
    workspace, rendered = applied(line)
    assert workspace.text == expected_text
    assert rendered.startswith("@ok v7 ")


def test_replace_with_old_changes_only_the_first_occurrence_inside_the_target():
    workspace, rendered = applied('replace 1-13 "Teh" "The"')
    assert workspace.text == DRAFT.replace("Teh end", "The end")
    assert rendered == "@ok v7 3:16"


def test_edit_reports_the_text_edit_and_its_inverse():
    workspace = Workspace(DRAFT)
    outcome = workspace.apply(parse('replace 3 "Teh" "The"'))
    assert outcome.kind == "ok"
    assert outcome.edit == TextEdit((2, 12), (2, 15), "The")
    assert outcome.inverse == ast.Replace(ast.Span(ast.Point(3, 13), ast.Point(3, 16)), "Teh")
    workspace.apply(outcome.inverse)
    assert workspace.text == DRAFT


# --- looking ------------------------------------------------------------------


def test_read_a_line_range():
    _, rendered = applied("read 5-7")
    assert rendered == "@text 5-7 of 13\n5│## Method\n6│\n7│We measure Teh things."


def test_read_a_section_a_line_a_span_and_a_search():
    assert applied("read #method/details")[1] == "@text 9-11 of 13\n9│### Details\n10│Small print.\n11│"
    assert applied("read 13")[1] == "@text 13-13 of 13\n13│It works."
    assert applied("read 3:13-3:16")[1] == "@text 3-3 of 13\n3:13│Teh end."
    assert applied('read "Small print."')[1] == "@text 10-10 of 13\n10│Small print."


def test_bare_read_shows_the_window_around_the_readers_cursor():
    workspace = Workspace("\n".join(f"line {n}" for n in range(1, 101)) + "\n")
    workspace.apply(parse("jump 50:1"))
    rendered = workspace.apply(parse("read")).render(None)
    assert rendered.splitlines()[0] == f"@text 45-{44 + MAX_READ_LINES} of 100"
    assert rendered.splitlines()[1] == "45│line 45"
    # The writer's cursor did not move: the writer's bare read starts at the top.
    assert workspace.apply(parse("read"), author="writer").render(None).startswith("@text 1-40 of 100\n1│line 1\n")


def test_jump_moves_the_cursor_and_shows_a_view_there():
    workspace, rendered = applied("jump #results")
    assert workspace.model_cursor == (11, 0)
    assert rendered.splitlines()[0] == "@text 7-13 of 13, cursor 12:1"
    assert rendered.splitlines()[1:3] == ["7│We measure Teh things.", "8│"]
    workspace.apply(parse('jump "measure"'))
    assert workspace.model_cursor == (6, 10)


def test_find_outline_notes():
    assert applied('find "Teh"')[1] == "@found 2: 3:13 | 7:12"
    assert applied('find "absent"')[1] == "@found 0"
    assert applied("outline")[1] == '@outline 1 "# Title" | 5 "## Method" | 9 "### Details" | 12 "## Results"'
    workspace, rendered = applied('note "intro: cut the second sentence"')
    assert rendered == "@ok v7"
    workspace.apply(parse('note "two\\nlines"'))
    assert workspace.notes == "intro: cut the second sentence\ntwo\nlines\n"
    assert workspace.apply(parse("notes")).render(8) == "@notes\nintro: cut the second sentence\ntwo\nlines"
    assert Workspace("").apply(parse("notes")).render(None) == "@notes (empty)"
    assert Workspace("no headings\n").apply(parse("outline")).render(None) == "@outline (no headings)"


def test_notes_with_text_replace_the_notes_whole():
    workspace = Workspace(DRAFT, "old line\nanother\n")
    outcome = workspace.apply(parse(r'notes "kept\nrewritten"'), author="writer")
    assert (workspace.notes, outcome.notes_changed, outcome.edit) == ("kept\nrewritten\n", True, None)
    assert workspace.text == DRAFT
    assert workspace.apply(parse(r'notes "kept\nrewritten\n"')).notes_changed is False  # same notes: no version
    assert workspace.apply(parse('notes ""')).notes_changed is True
    assert workspace.notes == ""


def test_looking_commands_change_nothing():
    workspace = Workspace(DRAFT, "a note\n")
    for line in ("read 1-3", 'find "Teh"', "outline", "notes", "read"):
        outcome = workspace.apply(parse(line))
        assert (outcome.edit, outcome.inverse, outcome.notes_changed, outcome.scale) == (None, None, False, None)
    assert (workspace.text, workspace.notes) == (DRAFT, "a note\n")


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        'insert 15 "x"', 'insert 3:22 "x"', 'insert 15:1 "x"', 'insert #nowhere "x"',
        'insert "absent" "x"', 'insert #method/results "x"', "delete 14", "delete 9-99",
        "delete 3:5-3:2", 'replace 3 "absent" "x"', "read 14", "read #nowhere", "jump 20",
        'jump "absent"', "delete 3:1-3:1", "goal", "history", 'checkpoint "a"', "rewind v1",
        'done "ok"', "delete 5-3",
        # A replace that would leave the text as it is (no version that changes nothing).
        'replace "Intro" "Intro"', 'replace 3 "Teh" "Teh"', 'replace 13 "It works.\\n"',
        # Commands the parser would not produce, built directly.
        ast.Delete(ast.LineRange(0, 3)), ast.Insert(ast.Line(0), "x"), ast.Insert(ast.Point(3, 0), "x"),
        ast.Insert(ast.Line(3), ""), ast.Find(""), ast.Note(""), ast.Delete(ast.Search("")),
    ],
)
def test_unresolvable_commands_raise_and_change_nothing(line):
    command = parse(line) if isinstance(line, str) else line
    workspace = Workspace(DRAFT, "notes\n")
    workspace.apply(parse("jump 3:4"))
    workspace.apply(parse("jump 7:2"), author="writer")
    with pytest.raises(ApplyError) as raised:
        workspace.apply(command)
    assert "\n" not in str(raised.value) and str(raised.value)
    assert (workspace.text, workspace.notes) == (DRAFT, "notes\n")
    assert (workspace.model_cursor, workspace.writer_cursor) == ((2, 3), (6, 1))
    assert workspace.outline() == Workspace(DRAFT).outline()


def test_error_messages_name_the_problem():
    workspace = Workspace(DRAFT)
    with pytest.raises(ApplyError, match=r"there is no line 20 \(lines: 1-13\)"):
        workspace.apply(parse("delete 20"))
    with pytest.raises(ApplyError, match=r"no heading #method/nowhere"):
        workspace.apply(parse("read #method/nowhere"))
    with pytest.raises(ApplyError, match=r'"absent" does not occur in the draft'):
        workspace.apply(parse('delete "absent"'))
    with pytest.raises(ApplyError, match=r"line 3 has no column 40"):
        workspace.apply(parse('insert 3:40 "x"'))


# --- cursors ------------------------------------------------------------------


def test_an_edit_moves_its_authors_cursor_and_shifts_the_others():
    workspace = Workspace(DRAFT)
    workspace.apply(parse("jump 7:4"), author="writer")
    workspace.apply(parse('insert 3 "One.\\nTwo.\\n"'), author="model:tiny")
    assert workspace.model_cursor == (4, 0)
    assert workspace.writer_cursor == (8, 3)
    workspace.apply(parse('insert 9:1 "So "'), author="model")
    assert workspace.writer_cursor == (8, 6)  # same line, after the insert
    workspace.apply(parse("delete 9:2-9:8"), author="writer")
    assert workspace.writer_cursor == (8, 1)
    assert workspace.model_cursor == (8, 1)  # was inside the deleted text


# --- bounds -------------------------------------------------------------------


def test_observations_are_bounded_however_large_the_draft():
    big = "".join(f"## Part {n}\n\n" + "word " * 300 + "\n\n" for n in range(300))
    workspace = Workspace(big)
    for line in ("read 1-200", "read", "outline", 'find "word"', "jump 600:1"):
        assert len(workspace.apply(parse(line)).render(12345)) <= MAX_OBSERVATION_CHARS
    window = workspace.apply(parse("read 1-200")).render(None)
    assert "…[+" in window  # long lines are clipped with a marker
    found = workspace.apply(parse('find "word"')).render(None)
    assert found.startswith("@found 90000: 3:1 | 3:6 |") and found.count("|") == MAX_FOUND
    assert workspace.apply(parse("outline")).render(None).endswith(" more")
    workspace.apply(ast.Note("n" * 10_000))
    notes = workspace.apply(parse("notes")).render(None)
    assert len(notes) <= MAX_OBSERVATION_CHARS and notes.startswith("@notes (the last ")


def test_a_read_window_holds_at_most_max_read_lines():
    workspace = Workspace("\n".join(str(n) for n in range(1, 201)) + "\n")
    rendered = workspace.apply(parse("read 10-200")).render(None)
    assert rendered.splitlines()[0] == f"@text 10-{9 + MAX_READ_LINES} of 200"
    assert len(rendered.splitlines()) == MAX_READ_LINES + 1


def test_an_empty_draft():
    workspace = Workspace("")
    assert workspace.line_count == 0
    assert workspace.apply(parse("read")).render(None) == "@text (empty draft)"
    with pytest.raises(ApplyError, match="the draft is empty"):
        workspace.apply(parse("delete 1"))
    assert workspace.apply(parse('insert 1 "# Hello\\n"')).render(1) == "@ok v1 2:1"
    assert workspace.outline() == [HeadingInfo(1, 1, "Hello", ("hello",))]


# --- unicode and line endings -------------------------------------------------


def test_columns_count_code_points():
    workspace = Workspace("héllo wörld 🙂 done\n")
    workspace.apply(parse('insert 1:14 "!"'))
    assert workspace.text == "héllo wörld 🙂! done\n"
    outcome = workspace.apply(parse('replace "wörld" "world"'))
    assert outcome.edit == TextEdit((0, 6), (0, 11), "world")
    assert applied('find "🙂"', workspace.text)[1] == "@found 1: 1:13"
    assert Workspace("# Über uns\n").outline()[0].path == ("über-uns",)


def test_crlf_is_normalised_on_load_and_in_incoming_text():
    workspace = Workspace("# A\r\n\r\nText.\r\n", "old\r\nnote\r\n")
    assert workspace.text == "# A\n\nText.\n"
    assert workspace.notes == "old\nnote\n"
    assert workspace.newline == "\r\n"
    workspace.apply(ast.Insert(ast.Line(3), "One\r\nTwo\r"))
    assert workspace.text == "# A\n\nOne\nTwo\nText.\n"
    assert Workspace("plain\n").newline == "\n"


# --- scale --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "scale"),
    [
        ('replace 3 "Teh" "The"', "word"),
        ('replace 3 "Teh end" "The real end"', "sentence"),
        ('insert 3:12 " A new one."', "sentence"),
        ('replace 3 "Intro line. Teh end." "One. Two. Three."', "paragraph"),
        ('insert 7:1 "Line\\nbreak "', "paragraph"),
        ('replace 5 "Method" "Approach"', "structure"),
        ('insert 3 "## New section\\n\\n"', "structure"),
        ("delete 4", "structure"),
        ('insert 3:12 "\\n\\n"', "structure"),
    ],
)
def test_scale(line, scale):
    workspace = Workspace(DRAFT)
    assert workspace.apply(parse(line)).scale == scale


def test_the_ok_answer_shows_where_the_edit_left_its_authors_cursor():
    workspace = Workspace(DRAFT)
    assert workspace.apply(parse('insert 1:3 "X"'), author="writer").render(3) == "@ok v3 1:4"
    assert workspace.model_cursor == (0, 0)
    assert workspace.apply(parse('replace 7 "Teh" "The"')).render(None) == "@ok 7:15"
