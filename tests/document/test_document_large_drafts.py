"""Large drafts and large commands stay bounded (issue 13, case 9): what
tree-sitter is handed for a prose draft, and the Python memory one large
insert costs. The figures themselves live in `bench core` (core_large)."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from infitool_edit.commands import ast
from infitool_edit.document import Workspace, structure
from infitool_edit.document import buffer as buffer_module
from infitool_edit.document.buffer import LineBuffer
from infitool_edit.session.editing import EditingSession

PROSE = "A sentence of prose that runs on for a while, as prose does.\n"


def test_tree_sitter_sees_little_of_a_prose_draft(monkeypatch):
    handed = []
    real = structure.Parser

    class CountingParser:
        def __init__(self, language):
            self._parser = real(language)

        def parse(self, text):
            handed.append(len(text))
            return self._parser.parse(text)

    monkeypatch.setattr(structure, "Parser", CountingParser)
    lines = ("# Big\n\n" + PROSE * 20_000 + "\n## Later\n\n" + PROSE * 20_000).split("\n")
    size = sum(len(line) + 1 for line in lines)
    headings = structure.MarkdownStructure(lines).outline()
    assert [h.title for h in headings] == ["Big", "Later"]
    # A run of prose lines reaches it as one line of one letter: a few
    # bytes for the whole draft, not two a line (a 50 MB paragraph's
    # 860,000 lines parsed as lines peaked at 700 MB).
    assert sum(handed) <= 1000, (sum(handed), size)


def test_a_one_megabyte_insert_costs_under_ten_times_its_size(tmp_path):
    draft = tmp_path / "draft.md"
    draft.write_text("# Small\n")
    big = "word " * (2**20 // 5)
    with EditingSession.open(draft, author="writer") as session:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            session.execute(ast.Insert(ast.End(), big))
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    assert peak <= 10 * len(big), f"{peak / 2**20:.1f} MB for a {len(big) / 2**20:.1f} MB insert"


# --- the compact buffer (one string and line starts) against the list of lines

_PIECES = ["", "a", "é", "日本", "\n", "\n\n", "# T\n", "word ", "line\nline", "🙂\n", "x" * 40]
_texts = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=_texts, data=st.data())
def test_the_compact_buffer_edits_and_reads_as_the_list_of_lines_does(text, data):
    plain, compact = LineBuffer(text, compact=False), LineBuffer(text, compact=True)
    for _ in range(data.draw(st.integers(0, 6))):
        lines = plain.lines
        start_line = data.draw(st.integers(0, len(lines) - 1))
        end_line = data.draw(st.integers(start_line, len(lines) - 1))
        start_col = data.draw(st.integers(0, len(lines[start_line])))
        end_col = data.draw(st.integers(start_col if end_line == start_line else 0, len(lines[end_line])))
        new = data.draw(_texts)
        start, end = (start_line, start_col), (end_line, end_col)
        assert compact.slice(start, end) == plain.slice(start, end)
        assert compact.replace(start, end, new) == plain.replace(start, end, new)
        assert compact.text == plain.text
        assert list(compact.lines) == plain.lines
        assert compact.lines[-1] == plain.lines[-1] and compact.lines[1:3] == plain.lines[1:3]
        assert (compact.line_count, compact.end) == (plain.line_count, plain.end)
        needle = data.draw(st.sampled_from(["a", "\n", "日", "line\nl", "é\n", "zz"]))
        assert compact.find_all(needle, 3) == plain.find_all(needle, 3)
        assert compact.find(needle, start, plain.end) == plain.find(needle, start, plain.end)
        offset = data.draw(st.integers(0, len(plain.text)))
        assert compact.offset_to_position(offset) == plain.offset_to_position(offset)


def test_a_large_draft_is_held_compact_and_reads_and_outlines_as_a_small_one(monkeypatch):
    draft = "# Big\n\n" + PROSE * 300 + "\n## Later\n\n```\n# code\n```\n" + PROSE * 300
    commands = [ast.Insert(ast.Line(3), "new line\n"), ast.Replace(ast.Search("Later"), "Then"),
                ast.Delete(ast.Line(5)), ast.Insert(ast.End(), "\n# End\n")]
    observations = {}
    for threshold in (len(draft) + 1, 0):  # the list of lines, then the compact form
        monkeypatch.setattr(buffer_module, "COMPACT_ABOVE", threshold)
        workspace = Workspace(draft)
        assert workspace._buffer.compact == (threshold == 0)
        seen = [workspace.apply(command).render(None) for command in commands]
        seen += [workspace.apply(ast.Read(ast.Span(ast.Point(600, 3), ast.Point(606, 1)))).render(None)]
        observations[threshold == 0] = (seen, workspace.text, workspace.outline())
    assert observations[True] == observations[False]
    assert [h.title for h in observations[True][2]] == ["Big", "Then", "End"]
