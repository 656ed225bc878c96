"""The `check` command: the slips a proofreader flags, each written as the
strings of the `replace` that fixes it, and nothing flagged in good prose,
code, names or links."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from infitool_edit.commands import parse
from infitool_edit.document import Workspace
from infitool_edit.document.workspace import ApplyError
from infitool_edit.document.observation import GUTTER
from infitool_edit.document.proofread import MAX_FINDINGS, lexicon

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "draft.md"


def findings(draft: str, command: str = "check") -> tuple[str, list[str]]:
    """The check's header and its rows."""
    header, *rows = Workspace(draft).apply(parse(command)).render().split("\n")
    return header, rows


def fixed_by_findings(draft: str) -> str:
    """The draft after every finding of one check is applied as the replace it spells."""
    workspace = Workspace(draft)
    _, *rows = workspace.apply(parse("check")).render().split("\n")
    for row in rows:
        workspace.apply(parse("replace " + row.replace(GUTTER, " ", 1)))
    return workspace.text


def test_the_word_list_is_shipped_and_large():
    words = lexicon()
    assert len(words) > 50_000
    assert {"lighthouse", "receive", "colour", "color", "object"} <= words.keys()
    assert "recieve" not in words  # a misspelling the prose repeats is still one


@pytest.mark.parametrize("slip, right", [
    ("recieve", "receive"),  # a real misspelling (codespell)
    ("obbject", "object"),  # a doubled letter
    ("lighthuose", "lighthouse"),  # two letters swapped
    ("lighthose", "lighthouse"),  # a letter dropped
    ("evenimg", "evening"),  # the key beside
])
def test_a_misspelt_word_is_flagged_with_its_fix(slip, right):
    draft = f"The keeper would {slip} the lamp every evening at dusk.\n"
    header, rows = findings(draft)
    assert header == "@check 1-1 of 1: 1 found"
    assert rows == [f'1{GUTTER}"{slip}" "{right}"']
    assert fixed_by_findings(draft) == draft.replace(slip, right)


def test_the_example_draft_has_one_slip_and_the_check_finds_exactly_it():
    header, rows = findings(EXAMPLE.read_text())
    assert header == "@check 1-25 of 25: 1 found"
    assert rows == [f'5{GUTTER}"Teh" "The"']


@pytest.mark.parametrize("draft", [
    "The keeper read `recieve_buf` and ran `obbject.py` twice before dawn.\n",  # inline code
    "```\nlet obbject = recieve();\n```\n",  # a fenced block
    "See <https://example.org/obbject> and [the log](https://example.org/teh) for more.\n",  # links
    "The keeper Tehron met Obbject at the pier and waved to them.\n",  # names are not re-spelt
    "The word zyxx is meant, and zyxx is what the writer typed twice.\n",  # used twice: meant
    # "submatchers" (one slip from "submatches") beside the writer's own "submatcher": a term
    "A map from submatchers of M to the FIRST set for that submatcher is kept.\n",
    "Lamp lit at dusk.\n",
])
def test_nothing_is_flagged_where_a_proofreader_would_not_look(draft):
    header, rows = findings(draft)
    assert header.endswith(": nothing found") and rows == []


@pytest.mark.parametrize("draft, row", [
    ("The keeper trimmed the the lamp at dusk and slept until the morning came.\n", '"the the" "the"'),
    ("The keeper trimmed  the lamp at dusk and slept until the morning came.\n", '"trimmed  the" "trimmed the"'),
    ("The keeper trimmed the lamp. then he slept until the morning came at last.\n", '"lamp. then" "lamp. Then"'),
    ("The keeper trimmed the lamp , then he slept until the morning came at last.\n", '"lamp ," "lamp,"'),
    ("The keeper trimmed the lamp and then he slept until the morning came at last\n", '"last" "last."'),
])
def test_mechanics_are_flagged_and_fixed_by_their_replace(draft, row):
    header, rows = findings(draft)
    assert rows == [f"1{GUTTER}{row}"]
    old, new = row[1:-1].split('" "')
    assert fixed_by_findings(draft) == draft.replace(old, new, 1)


def test_no_full_stop_is_asked_of_headings_lists_or_a_line_inside_a_paragraph():
    draft = (
        "## The winter of the long calm and the keeper with his lamp\n\n"
        "- the keeper trimmed the lamp and then he slept until the morning came\n\n"
        "The keeper trimmed the lamp and then he slept until the morning came\n"
        "and the sea was calm again.\n"
    )
    assert findings(draft)[1] == []


def test_a_short_slip_is_written_with_enough_of_its_line_to_be_the_first_occurrence():
    draft = "The tehran carpet lay by the door; teh keeper swept it every evening.\n"
    _, rows = findings(draft)
    assert rows == [f'1{GUTTER}"door; teh" "door; the"']
    assert fixed_by_findings(draft) == draft.replace("; teh", "; the")


def test_a_slip_whose_text_occurs_earlier_is_written_long_enough_for_the_draft_wide_replace():
    """`replace "old" "new"` changes the first occurrence in the draft, and its search string is
    the one the decoder's mask holds to the draft: so a finding's old text is grown (inside its
    line) until its first occurrence in the whole draft is the slip."""
    draft = "The word teh is the example here.\n\nA keeper wrote teh log.\n"
    _, rows = findings(draft, "check 3")
    assert rows == [f'3{GUTTER}"wrote teh" "wrote the"']
    workspace = Workspace(draft)
    workspace.apply(parse('replace "wrote teh" "wrote the"'))
    assert workspace.text == draft.replace("wrote teh", "wrote the")
    # A line whose whole text occurs earlier keeps the line-scoped row.
    twice = "Teh end.\n\nTeh end.\n"
    assert findings(twice, "check 3")[1] == [f'3{GUTTER}"Teh" "The"']


def test_findings_that_overlap_are_left_for_the_next_check():
    draft = "The keeper would go down to the pier to recieve\n"  # a misspelling and no full stop, one word
    assert fixed_by_findings(draft) == "The keeper would go down to the pier to receive\n"
    assert fixed_by_findings(fixed_by_findings(draft)) == "The keeper would go down to the pier to receive.\n"


def test_a_range_is_checked_and_the_header_says_which_lines_were_looked_at():
    draft = "Teh first line of the draft is here.\n\nTeh third line of the draft is here.\n"
    assert findings(draft, "check 3") == ("@check 3-3 of 3: 1 found", [f'3{GUTTER}"Teh third" "The third"'])
    assert findings(draft, "check 1-2")[0] == "@check 1-2 of 3: 1 found"


def test_a_check_stops_after_the_line_of_its_twentieth_finding():
    draft = "".join(f"Line {n} has teh slip in it.\n" for n in range(1, 41))
    header, rows = findings(draft)
    assert header == f"@check 1-{MAX_FINDINGS} of 40: {MAX_FINDINGS} found"
    assert len(rows) == MAX_FINDINGS
    header, rows = findings(draft, f"check {MAX_FINDINGS + 1}-40")
    assert header == f"@check {MAX_FINDINGS + 1}-40 of 40: {40 - MAX_FINDINGS} found"


def test_every_finding_on_synthetic_drafts_applies_as_the_replace_it_spells():
    """Over drafts full of random slips: each row of a check is a replace the
    workspace accepts, applied in order, and it changes only its own line."""
    rng = random.Random(7)
    words = [w for w in lexicon() if 4 <= len(w) <= 9][:4000]
    for _ in range(60):
        line_words = []
        for _ in range(rng.randint(8, 30)):
            word = rng.choice(words)
            if rng.random() < 0.2:
                i = rng.randrange(1, len(word) - 1)
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            line_words.append(word + ("," if rng.random() < 0.1 else "") + (" ." if rng.random() < 0.05 else ""))
        draft = "The " + " ".join(line_words) + "\n\nA second line that is fine.\n"
        workspace = Workspace(draft)
        _, *rows = workspace.apply(parse("check")).render().split("\n")
        for row in rows:
            outcome = workspace.apply(parse("replace " + row.replace(GUTTER, " ", 1)))
            assert outcome.edit.start[0] == outcome.edit.end[0] == int(row.split(GUTTER)[0]) - 1
        assert workspace.lines[2] == "A second line that is fine."


# --- fix: the check's findings applied -----------------------------------------

SLIPS = "# Title\n\nTeh lamp was was lit .\n\nA name: Zorblax recieve it.\n\n    code teh stays\n"


def test_fix_applies_every_finding_as_one_edit_equal_to_their_replaces():
    workspace = Workspace(SLIPS)
    outcome = workspace.apply(parse("fix"))
    assert workspace.text == fixed_by_findings(SLIPS) != SLIPS
    assert "The lamp was lit." in workspace.text and "receive" in workspace.text
    assert "code teh stays" in workspace.text  # code is never checked, so never fixed
    # One edit, from the first slip to the last, and its inverse puts the draft back.
    assert outcome.edit.start == (2, 0) and outcome.edit.end[0] == 4
    workspace.apply(outcome.inverse, author="writer")
    assert workspace.text == SLIPS


def test_fix_on_a_line_takes_only_that_lines_findings():
    workspace = Workspace(SLIPS)
    workspace.apply(parse("fix 5"))
    assert "Teh lamp was was lit ." in workspace.text and "recieve" not in workspace.text


def test_fix_where_check_finds_nothing_is_refused_and_changes_nothing():
    workspace = Workspace(SLIPS)
    for command in ("fix 1", "fix 7"):  # a heading without a slip; code
        with pytest.raises(ApplyError, match="nothing to fix"):
            workspace.apply(parse(command))
    assert workspace.text == SLIPS
    workspace.apply(parse("fix"))
    with pytest.raises(ApplyError, match="nothing to fix"):
        workspace.apply(parse("fix"))
    with pytest.raises(ApplyError, match="nothing to fix"):
        Workspace("").apply(parse("fix"))


def test_two_spaces_after_sentences_are_a_convention_when_the_lines_keep_it():
    two_spaced = (
        "The keeper trimmed the lamp.  Then he slept until the morning came.  The sea was calm.\n"
    )
    assert findings(two_spaced)[1] == []
    # one such break among single-spaced sentences is a slip, and so is a doubled space inside one
    slip = "The keeper trimmed the lamp.  Then he slept. The sea was calm. The gulls were loud.\n"
    assert findings(slip)[1] == [f'1{GUTTER}"lamp.  Then" "lamp. Then"']
    inside = "The keeper trimmed  the lamp.  Then he slept.  The sea was calm.\n"
    assert findings(inside)[1] == [f'1{GUTTER}"trimmed  the" "trimmed the"']
    # where sentences end with two spaces, so does a colon; elsewhere two after it are a slip
    assert findings("The keeper had one rule:  trim the lamp.  Then he slept.  The sea was calm.\n")[1] == []
    assert findings("The keeper had one rule:  trim the lamp. Then he slept.\n")[1] == [
        f'1{GUTTER}"rule:  trim" "rule: trim"']


def test_a_word_meant_three_times_or_after_a_compound_is_no_doubled_word():
    assert findings("The sign said STOP STOP STOP STOP in red letters.\n")[1] == []
    assert findings("Should we make it opt-in in some form for the keepers?\n")[1] == []
    assert findings("The keeper trimmed the the lamp at dusk.\n")[1] == [f'1{GUTTER}"the the" "the"']


@pytest.mark.parametrize("draft", [
    # the lead-in to a list, or to an indented block (a PEP's old-style heading)
    "The keeper kept these rules for the lamp and the long winter watch\n\n- trim the wick\n",
    "The keeper kept these rules for the lamp and the long winter watch\n\n 1. trim the wick\n",
    "Relationship to the keeper and his lamp during the long winter watch\n\n    The keeper trimmed it.\n",
    # the lead-in to a fenced code block, or to reStructuredText's literal block
    "If you define a trait for the keeper and his lamp with a supertrait\n\n```rust\ntrait Lamp {}\n```\n",
    "Before the change there was no difference between the lamp and the wick\n\n::\n\n    lamp = wick\n",
    # a caption between HTML tags
    "<figcaption>\n\nListing 3-4: The keeper trims the lamp and waits for the morning\n\n</figcaption>\n",
])
def test_no_full_stop_is_asked_of_a_lead_in_or_a_caption(draft):
    assert findings(draft)[1] == []
