"""Large drafts and large commands stay bounded (issue 13, case 9): what
tree-sitter is handed for a prose draft, and the Python memory one large
insert costs. The figures themselves live in `bench core` (core_large)."""

from __future__ import annotations

import tracemalloc

from infitool_edit.commands import ast
from infitool_edit.document import structure
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
