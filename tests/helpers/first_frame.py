"""A probe of the editor's start, run as a child process (``python -c``): it
notes when each watched package starts to import and when the draft is first
painted (the editor draws its "Three words here." line), before the test's own
``main`` opens an app. Each test appends its ``main`` and prints what it asserts."""

from __future__ import annotations

# The draft the first-frame tests open: the probe knows it is painted by its third line.
DRAFT = "# Title\n\nThree words here.\n"

_HEAD = """
import asyncio, sys, time
from pathlib import Path

WATCHED = %r
moments = {}

class Watch:  # notes when a watched package starts to import; imports nothing itself
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED:
            moments.setdefault(name, time.perf_counter())
        return None

sys.meta_path.insert(0, Watch())
from infitool_edit.ui.editor import DraftEditor

render_line = DraftEditor.render_line

def watched(self, y):
    if "Three words here." in self.text:
        moments.setdefault("painted", time.perf_counter())
    return render_line(self, y)

DraftEditor.render_line = watched
"""


def probe(watched: tuple[str, ...], main: str) -> str:
    """The probe's source: the watch, then ``main`` (which ends by running itself)."""
    return _HEAD % (watched,) + main
