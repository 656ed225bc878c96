"""move: a range cut and put at a point, as one edit, keeping markdown's
blank lines between whole-line blocks; refused in one line, changing
nothing, when the point lies inside what moves or nothing would move."""

from __future__ import annotations

import random
import re

import pytest

from infitool_edit.commands import ast, parse, serialize
from infitool_edit.document import ApplyError, Workspace

from helpers import REPOSITORY

TITLED = "# T\n\n## A\n\npara a\n\n## B\n\npara b\n\n## C\n\npara c\n"
UNTITLED = "## A\n\npara a\n\n## B\n\npara b\n\n## C\n\npara c\n"
EXAMPLE = (REPOSITORY / "examples" / "draft.md").read_text(encoding="utf-8")


def moved(draft: str, line: str) -> str:
    """The draft after ``line``, checking on the way that the move is one
    edit whose inverse gives the draft back byte for byte."""
    workspace = Workspace(draft)
    outcome = workspace.apply(parse(line))
    assert outcome.kind == "ok" and outcome.edit is not None
    back = Workspace(workspace.text)
    back.apply(parse(serialize(outcome.inverse)))  # the undo, as the history would store it
    assert back.text == draft
    return workspace.text


# --- sections: the four cases, with and without a final newline -------------------

SECTION_MOVES = [
    # a middle section after a middle one
    (TITLED, "move #a #b", "# T\n\n## B\n\npara b\n\n## A\n\npara a\n\n## C\n\npara c\n"),
    # a middle section after the last one, by its heading and by $
    (TITLED, "move #a #c", "# T\n\n## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"),
    (TITLED, "move #a $", "# T\n\n## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"),
    (TITLED, "move #b #c", "# T\n\n## A\n\npara a\n\n## C\n\npara c\n\n## B\n\npara b\n"),
    # the last section (no blank line after it) after a middle one
    (TITLED, "move #c #a", "# T\n\n## A\n\npara a\n\n## C\n\npara c\n\n## B\n\npara b\n"),
    # the first section after the last one
    (UNTITLED, "move #a #c", "## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"),
    (UNTITLED, "move #a $", "## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"),
    # the last section first
    (UNTITLED, "move #c 1", "## C\n\npara c\n\n## A\n\npara a\n\n## B\n\npara b\n"),
    # a section inside the title, after the title: that is the end of the draft
    (TITLED, "move #a #t", "# T\n\n## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"),
    # the same by line numbers (3-6: "## A" to the blank line after "para a"; 11: "## C")
    (TITLED, "move 3-6 11", "# T\n\n## B\n\npara b\n\n## A\n\npara a\n\n## C\n\npara c\n"),
    (TITLED, "move 3-5 $", "# T\n\n## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"),
]


@pytest.mark.parametrize("draft,line,expected", SECTION_MOVES)
def test_a_section_moves_with_one_blank_line_on_each_side(draft, line, expected):
    assert moved(draft, line) == expected


@pytest.mark.parametrize("draft,line,expected", SECTION_MOVES)
def test_a_draft_without_a_final_newline_stays_without_one(draft, line, expected):
    assert moved(draft[:-1], line) == expected[:-1]


def test_trailing_and_leading_blank_lines_of_the_draft_stay_where_they_are():
    draft = "\n" + TITLED + "\n"  # one blank line before the title, one after the last paragraph
    assert moved(draft, "move #a #c") == "\n# T\n\n## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n\n"
    assert moved(draft, "move #c #a") == "\n# T\n\n## A\n\npara a\n\n## C\n\npara c\n\n## B\n\npara b\n\n"


def test_nested_sections_move_whole():
    draft = "# T\n\n## A\n\na\n\n### A1\n\na1\n\n## B\n\nb\n"
    assert moved(draft, "move #a #b") == "# T\n\n## B\n\nb\n\n## A\n\na\n\n### A1\n\na1\n"
    assert moved(draft, "move #a/a1 #b") == "# T\n\n## A\n\na\n\n## B\n\nb\n\n### A1\n\na1\n"


def test_the_example_drafts_winter_goes_after_summer():
    text = moved(EXAMPLE, "move #the-lighthouse-keepers-year/winter #the-lighthouse-keepers-year/summer")
    assert moved(EXAMPLE, "move #winter #summer") == text
    assert text.index("## Summer") < text.index("## Winter") < text.index("## Conclusion")
    assert "\n\n\n" not in text and text.count("\n") == EXAMPLE.count("\n")
    assert sorted(text.split("\n")) == sorted(EXAMPLE.split("\n"))


# --- lines and lists -------------------------------------------------------------


def test_a_paragraph_moves_between_paragraphs_without_doubled_blank_lines():
    draft = "one\n\ntwo\n\nthree\n"
    assert moved(draft, "move 1 $") == "two\n\nthree\n\none\n"
    assert moved(draft, "move 5 1") == "three\n\none\n\ntwo\n"
    assert moved(draft, "move 3 $") == "one\n\nthree\n\ntwo\n"
    assert moved(draft, "move 3-4 1") == "two\n\none\n\nthree\n"


def test_an_item_of_a_tight_list_stays_in_a_tight_list():
    draft = "Intro.\n\n- one\n- two\n- three\n\nOutro.\n"
    assert moved(draft, "move 3 6") == "Intro.\n\n- two\n- three\n- one\n\nOutro.\n"
    assert moved(draft, "move 5 3") == "Intro.\n\n- three\n- one\n- two\n\nOutro.\n"
    # out of the list, to the end: set off from the paragraph it follows? It had no gap of its own,
    # and the end of the draft has none: it follows the last line directly, as it was in its list.
    assert moved(draft, "move 4 $") == "Intro.\n\n- one\n- three\n\nOutro.\n- two\n"


def test_the_cursor_lands_on_the_moved_text():
    workspace = Workspace(TITLED)
    outcome = workspace.apply(parse("move #a #c"))
    assert workspace.lines[outcome.cursor[0]] == "## A" and outcome.cursor[1] == 0
    assert workspace.model_cursor == outcome.cursor
    assert outcome.scale == "structure"


# --- character-level moves: cut and paste as it is ----------------------------------


def test_a_search_string_or_span_is_cut_and_pasted_as_it_is():
    summer = "The summer entries are the shortest of all. Calm. Clear. Lamp lit at dusk."
    text = moved(EXAMPLE, 'move " Lamp lit at dusk." 21:44')
    assert "The summer entries are the shortest of all. Lamp lit at dusk. Calm. Clear." in text
    assert text.replace("The summer entries are the shortest of all. Lamp lit at dusk. Calm. Clear.", summer) == EXAMPLE
    assert moved("abc def ghi\n", "move 1:1-1:5 1:12") == "def ghiabc \n"  # exactly the characters named
    assert moved("abc def ghi\n", 'move "ghi" 1:1') == "ghiabc def \n"
    # whole lines to a point inside a line: pasted as they are
    assert moved("one\ntwo\n", "move 1 2:2") == "tone\nwo\n"


def test_a_move_takes_nothing_out_of_the_draft():
    assert Workspace(TITLED).removal(parse("move #a #c")) == ""


# --- refusals ------------------------------------------------------------------------

REFUSED = [
    (TITLED, "move #t #a", "inside"),  # the end of A lies inside T
    (TITLED, "move 3-6 5", "inside"),
    (TITLED, "move #b #a", "nothing would move"),  # B already follows A
    (TITLED, "move #a #a", "nothing would move"),
    (TITLED, "move #a 3", "nothing would move"),
    (TITLED, "move #a 2", "nothing would move"),  # the blank line just above A: the same gap
    (TITLED, "move #c $", "nothing would move"),
    (TITLED, "move 2 9", "blank"),
    (TITLED, "move #nowhere 1", "no heading #nowhere"),
    (TITLED, "move 3 99", "no line 99"),
    (TITLED, "move 99 1", "no line 99"),
    (TITLED, "move 6-3 1", "runs backwards"),
    (TITLED, 'move "not there" 1', "does not occur"),
    (TITLED, 'move "para a" 5:3', "inside"),
    (TITLED, 'move "para a" 5:7', "nothing would move"),
    (TITLED, "move 5:1-5:1 1", "nothing to move"),
]


@pytest.mark.parametrize("draft,line,message", REFUSED)
def test_a_refused_move_says_why_in_one_line_and_changes_nothing(draft, line, message):
    workspace = Workspace(draft)
    workspace.apply(parse("jump 7"))
    before = (workspace.text, workspace.model_cursor, workspace.writer_cursor)
    with pytest.raises(ApplyError, match=message) as caught:
        workspace.apply(parse(line))
    assert "\n" not in str(caught.value)
    assert (workspace.text, workspace.model_cursor, workspace.writer_cursor) == before


# --- every whole-line move of small drafts ------------------------------------------------


def _random_draft(rng: random.Random) -> str:
    blocks = []
    for index in range(rng.randint(2, 5)):
        kind = rng.choice(("heading", "paragraph", "list"))
        if kind == "heading":
            blocks.append(f"{'#' * rng.randint(1, 3)} H{index}")
        elif kind == "paragraph":
            blocks.append("\n".join(f"p{index} line {n}" for n in range(rng.randint(1, 2))))
        else:
            blocks.append("\n".join(f"- i{index}.{n}" for n in range(rng.randint(2, 3))))
    text = "\n\n".join(blocks)
    return rng.choice(("", "\n", "\n\n")) + text + rng.choice(("", "\n", "\n\n"))


def _gap_runs(text: str) -> list[int]:
    return [len(run) - 1 for run in re.findall(r"\n+", text.strip("\n"))]


def test_every_line_move_of_small_drafts_keeps_lines_ends_and_gaps():
    """Each (range, point) pair of 8 random drafts: refused with the draft
    unchanged, or one edit that keeps every non-blank line, keeps the moved
    lines together and in order, leaves the draft's leading and trailing
    blank lines and final newline as they were, makes no gap wider than the
    widest there was, and is undone exactly by its inverse."""
    rng = random.Random(20261130)
    made = refused = 0
    for _ in range(8):
        draft = _random_draft(rng)
        count = Workspace(draft).line_count
        for first in range(1, count + 1):
            for last in range(first, min(count, first + 2) + 1):
                for point in range(1, count + 2):
                    target = ast.Line(first) if first == last else ast.LineRange(first, last)
                    command = ast.Move(target, ast.Line(point) if point <= count else ast.End())
                    workspace = Workspace(draft)
                    try:
                        outcome = workspace.apply(command)
                    except ApplyError:
                        assert workspace.text == draft
                        refused += 1
                        continue
                    made += 1
                    text = workspace.text
                    assert sorted(line for line in text.split("\n") if line.strip()) == sorted(
                        line for line in draft.split("\n") if line.strip())
                    block = "\n".join(draft.split("\n")[first - 1 : last]).strip("\n")
                    assert block in text
                    assert len(text) - len(text.lstrip("\n")) == len(draft) - len(draft.lstrip("\n"))
                    assert len(text) - len(text.rstrip("\n")) == len(draft) - len(draft.rstrip("\n"))
                    assert max(_gap_runs(text), default=0) <= max(_gap_runs(draft), default=0)
                    back = Workspace(text)
                    back.apply(outcome.inverse)
                    assert back.text == draft
    assert made > 500 and refused > 300, (made, refused)
