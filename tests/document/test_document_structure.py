"""The heading index: what tree-sitter sees, kept current by partial reparses."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infitool_edit.commands import ast
from infitool_edit.document import HeadingInfo, Workspace
from infitool_edit.document.structure import MarkdownStructure

# Lines that change what the lines around them mean: fences, setext
# underlines, HTML blocks, list and quote markers, front matter.
MARKDOWN_LINES = [
    "", "", "", "Plain prose here.", "More prose, with a comma.", "and a lower-case line", "Prose again", "# Title", "## Intro",
    "### Deep down", "Setext title", "===", "---", "```", "~~~", "```python", "    indented code",
    "- a list item", "  # inside the item", "> # quoted heading", "> quote", "<div>", "</div>",
    "<!--", "-->", "+++", "| a | b |", "|---|---|", "#not a heading", "# Closing #",
]

drafts = st.lists(st.sampled_from(MARKDOWN_LINES), max_size=30).map(lambda lines: "\n".join(lines) + "\n")
fragments = st.lists(st.sampled_from(MARKDOWN_LINES + ["x", "#", "`", "\n", "|", "a | b"]), max_size=4).map("\n".join)


def fresh_outline(text: str) -> list[HeadingInfo]:
    """The plain twin: one parse of the whole text, nothing cut or skipped."""
    return MarkdownStructure(text.split("\n"), whole=True).outline()


LONG = "A long line of prose, " * 8
LARGE_LINES = MARKDOWN_LINES + [LONG, LONG + "| with a bar", LONG + "and -->", "Title " + LONG]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.sampled_from(LARGE_LINES), max_size=40), region=st.integers(1, 8))
def test_parsing_by_regions_with_long_lines_cut_equals_one_whole_parse(lines, region):
    text = "\n".join(lines) + "\n"
    assert MarkdownStructure(text.split("\n"), region_lines=region).outline() == fresh_outline(text)


def test_a_setext_title_of_long_lines_is_whole():
    text = f"{LONG}\nsecond {LONG}\n===\n\n{LONG}\n"
    (heading,) = MarkdownStructure(text.split("\n")).outline()
    assert heading.title == f"{LONG.strip()} second {LONG.strip()}"


def test_atx_setext_levels_titles_and_paths():
    draft = "# Book\n\nIntro.\n\nMethod & Results\n----------------\n\n### Deep Dive ###\n\nAgain\n=====\n"
    assert Workspace(draft).outline() == [
        HeadingInfo(1, 1, "Book", ("book",)),
        HeadingInfo(5, 2, "Method & Results", ("book", "method--results")),
        HeadingInfo(8, 3, "Deep Dive", ("book", "method--results", "deep-dive")),
        HeadingInfo(10, 1, "Again", ("again",)),
    ]


def test_headings_in_code_fences_quotes_and_list_items_are_not_outline():
    draft = "# Real\n\n```\n# in a fence\n```\n\n> # in a quote\n\n- item\n\n  # in an item\n\n~~~\n## tilde fence\n~~~\n"
    assert [heading.title for heading in Workspace(draft).outline()] == ["Real"]


def test_opening_a_fence_hides_every_heading_below_and_closing_it_brings_them_back():
    body = "".join(f"## Part {n}\n\nText {n}.\n\n" for n in range(30))
    workspace = Workspace("# Top\n\n" + body)
    workspace.apply(ast.Insert(ast.Line(3), "```\n"))
    assert [heading.title for heading in workspace.outline()] == ["Top"]
    workspace.apply(ast.Insert(ast.Line(4), "```\n"))
    assert len(workspace.outline()) == 31
    assert workspace.outline() == fresh_outline(workspace.text)


def test_editing_the_underline_turns_a_paragraph_into_a_heading_and_back():
    workspace = Workspace("Intro\n\nFirst line\nSecond line\nnot yet\n\nAfter.\n")
    workspace.apply(ast.Replace(ast.Line(5), "===\n"))
    assert workspace.outline() == [HeadingInfo(3, 1, "First line Second line", ("first-line-second-line",))]
    workspace.apply(ast.Replace(ast.Line(5), "plain\n"))
    assert workspace.outline() == []


def test_an_atx_line_that_was_a_setext_underline_is_reparsed_with_the_paragraph():
    workspace = Workspace("Para\n---\n\nx\n")
    workspace.apply(ast.Replace(ast.Line(2), "# Now ATX\n"))
    assert workspace.outline() == fresh_outline(workspace.text)
    assert [h.title for h in workspace.outline()] == ["Now ATX"]


def test_front_matter_is_not_a_heading():
    assert Workspace("---\ntitle: x\n\n# not a heading\n---\n\n# Real\n").outline()[0].title == "Real"


def span_text(lines, start_line, start_col, end_line, end_col):
    if start_line == end_line:
        return lines[start_line][start_col:end_col]
    return "\n".join([lines[start_line][start_col:], *lines[start_line + 1:end_line], lines[end_line][:end_col]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draft=drafts, data=st.data())
def test_incremental_outline_equals_a_full_parse_after_random_edits(draft, data):
    workspace = Workspace(draft)
    for _ in range(data.draw(st.integers(1, 8))):
        lines = workspace.lines
        start_line = data.draw(st.integers(0, len(lines) - 1))
        end_line = data.draw(st.integers(start_line, min(len(lines) - 1, start_line + 4)))
        start_col = data.draw(st.integers(0, len(lines[start_line])))
        end_min = start_col if end_line == start_line else 0
        end_col = data.draw(st.integers(end_min, len(lines[end_line])))
        new = data.draw(fragments)
        span = ast.Span(ast.Point(start_line + 1, start_col + 1), ast.Point(end_line + 1, end_col + 1))
        if (start_line, start_col) == (end_line, end_col) and not new:
            continue
        if span_text(lines, start_line, start_col, end_line, end_col) == new:
            continue  # a replace that changes nothing is refused
        workspace.apply(ast.Replace(span, new))
        assert workspace.outline() == fresh_outline(workspace.text)


def test_prose_edits_that_skip_the_parse_still_see_setext_titles_and_tables():
    workspace = Workspace("Intro.\n\nFirst line\nsecond line\n===\n\nabc\n|---|\n\nplain\nmore\n")
    workspace.apply(ast.Replace(ast.Line(4), "changed line\n"))
    assert workspace.outline()[0].title == "First line changed line"
    workspace.apply(ast.Insert(ast.Line(11), "inserted line\n"))
    workspace.apply(ast.Replace(ast.Search("abc"), "abc | def"))
    assert workspace.outline() == fresh_outline(workspace.text)
    workspace.apply(ast.Delete(ast.Line(3)))
    assert workspace.outline() == fresh_outline(workspace.text)
    assert workspace.outline()[0].title == "changed line"
