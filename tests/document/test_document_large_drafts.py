"""Large drafts and large commands stay bounded (issue 13, case 9): what
tree-sitter is handed for a prose draft, and the Python memory one large
insert costs. The figures themselves live in `bench core` (core_large)."""

from __future__ import annotations

import json
import subprocess
import sys
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


@settings(max_examples=80, deadline=None)
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


_MEMORY_CHILD = r"""
import json, resource, sys
from pathlib import Path
from infitool_edit.commands import ast
from infitool_edit.session.editing import EditingSession

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

before = peak()  # everything imported; nothing of the draft read yet
session = EditingSession.open(Path(sys.argv[1]), author="writer")
opened = peak()
session.execute(ast.Insert(ast.Line(3), "inserted line\n"))
session.execute(ast.Replace(ast.Search("Later"), "Then"))
edited = peak()
outline = [h.title for h in session.workspace.outline()]
compact = session.workspace._buffer.compact
session.close()
print(json.dumps({"open": opened - before, "edit": edited - before, "outline": outline, "compact": compact}))
"""


def test_a_large_draft_costs_at_most_a_few_times_its_size_to_open_and_edit(tmp_path):
    """Issue 13: a large draft in at most 3x its size. Measured as the peak
    RSS of a fresh process over its RSS before opening (what tracemalloc
    misses: tree-sitter's C allocations), on a 6 MB draft of 60-column
    prose, the shape that costs most per byte. Bound at 6x (twice the
    target, for allocator noise and the fixed costs that weigh more on a
    small draft: 3.2x measured here, 2.0x at 50 MB); with the buffer held
    as a list of lines and the tree parsed line by line it took 9.6x."""
    draft = tmp_path / "draft.md"
    with open(draft, "w") as handle:
        handle.write("# Big\n\n" + PROSE * 50_000 + "\n## Later\n\n" + PROSE * 50_000)
    size = draft.stat().st_size
    result = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(draft)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["compact"] and figures["outline"] == ["Big", "Then"]
    assert figures["open"] <= 6 * size, f"opening took {figures['open'] / size:.1f}x the draft"
    assert figures["edit"] <= 6 * size, f"two edits took {figures['edit'] / size:.1f}x the draft"
