"""The benchmark's draft and edits are what it says they are (its speed is
measured by ``python -m infitool_edit.bench.core_document``, never here)."""

from __future__ import annotations

import random

from infitool_edit.bench.core_document import generate_draft, random_edit
from infitool_edit.document import Workspace
from infitool_edit.document.structure import MarkdownStructure


def test_generated_draft_has_the_size_and_headings_asked_for_and_every_edit_applies():
    rng = random.Random(1)
    draft = generate_draft(50_000, rng)
    assert 50_000 <= len(draft) < 51_000
    workspace = Workspace(draft)
    assert len(workspace.outline()) > 50
    assert all(heading.title != "a comment, not a heading" for heading in workspace.outline())
    for _ in range(300):
        outcome = workspace.apply(random_edit(workspace, rng))  # raises if a command does not resolve
        assert outcome.edit is not None
    assert workspace.outline() == MarkdownStructure(workspace.lines).outline()
