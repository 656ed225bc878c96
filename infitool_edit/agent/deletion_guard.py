"""Asking the writer before the model deletes a large part of the draft.

A weak model can wipe a draft with one `delete 1-400` or a `rewind` to an
early version. Before the runner executes a model's command it measures what
the command would take out (``EditingSession.removal``); when that is more
than ``share`` of the draft's words (20% by default) and at least
``MIN_WORDS`` words (so that tidying a ten-word draft never asks), the run
waits for the writer's answer: allow it, refuse it (nothing is applied; the
model reads that the writer refused), or take the pen (refused, and the run
pauses). Nothing is lost either way, since every version stays in the
history; the question is about the writer's attention, not about safety of
the data.

Whoever runs the model answers through a callback: the editor with a dialog,
`infitool-edit run` with a prompt on a terminal or a fixed answer
(``--large-deletions``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DELETION_SHARE = 0.2
MIN_WORDS = 10
SHOWN_CHARS = 240


class Answer(enum.Enum):
    ALLOW = "allow"
    REFUSE = "refuse"
    TAKE_PEN = "take the pen"


@dataclass(frozen=True)
class LargeDeletion:
    """A model's command that would remove ``removed_words`` of the draft's
    ``draft_words`` words; ``removed`` is the start of the text that would go."""

    line: str
    removed_words: int
    draft_words: int
    removed: str

    @property
    def share(self) -> float:
        return self.removed_words / self.draft_words if self.draft_words else 1.0

    def describe(self) -> str:
        return (f"`{self.line[:80]}` would delete {self.removed_words:,} of the draft's "
                f"{self.draft_words:,} words ({self.share:.0%})")


def large_deletion(line: str, removed: str, draft: str, share: float = DELETION_SHARE) -> LargeDeletion | None:
    """The question to ask, or None when ``removed`` is small enough to go unasked."""
    removed_words = len(removed.split())
    if removed_words < MIN_WORDS:
        return None  # checked first: counting a 2 MB draft's words is not free
    draft_words = len(draft.split())
    if draft_words and removed_words / draft_words <= share:
        return None
    shown = removed if len(removed) <= SHOWN_CHARS else removed[: SHOWN_CHARS - 1] + "…"
    return LargeDeletion(line, removed_words, draft_words, shown)


def refusal(question: LargeDeletion, answer: Answer) -> str:
    """What the model reads when the writer said no (the stream's ``@error`` line)."""
    why = "the writer took the pen" if answer is Answer.TAKE_PEN else "the writer refused"
    return (f"{why}: this command would delete {question.removed_words:,} of "
            f"{question.draft_words:,} words; nothing was applied")
