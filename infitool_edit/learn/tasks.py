"""A task: a draft, a goal, the text that should come out, and the expert
session that gets there. Traces, synthetic tasks, training data and
evaluation all speak in tasks; ``check`` says whether an outcome solved one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from infitool_edit.learn.render import Renderer

TASK_KINDS = ("typos", "mechanics", "structure", "process", "clean", "traces", "decline")


@dataclass(frozen=True)
class Task:
    kind: str  # one of TASK_KINDS
    goal: str
    draft: str
    target: str
    script: tuple[str, ...]  # the expert session, ending with done
    source: str
    path: str
    name: str = "draft.md"  # the draft's file name (the model sees it in @view)
    check: str = "exact"  # how an outcome is judged: see CHECKS
    detail: tuple[str, ...] = field(default=())  # what the checker needs beyond the target


class StreamMismatch(ValueError):
    """A rendered expert session did not solve its own task (one line)."""


def render_task(renderer: Renderer, task: Task) -> dict:
    """The task's expert stream as one training record; raises
    StreamMismatch unless the real editor, playing the script, reaches the
    target without a refused command and ends with done."""
    rendered = renderer.render(task.draft, task.goal, task.script, name=task.name)
    if rendered.errors:
        line = next(l for l in rendered.stream.split("\n") if l.startswith("@error"))
        raise StreamMismatch(f"{task.source}/{task.path}: a command was refused: {line}")
    if not check(task, rendered.text, rendered.notes, done_summary(rendered.stream)):
        raise StreamMismatch(f"{task.source}/{task.path}: the session does not reach the target")
    if not rendered.finished:
        raise StreamMismatch(f"{task.source}/{task.path}: the session does not end with done")
    return {"stream": rendered.stream, "task": task.kind, "source": task.source, "path": task.path}


# --- checkers -------------------------------------------------------------------

_ATX = re.compile(r"^(#{1,6}) (.*)$")


def squeeze(text: str) -> str:
    return " ".join(text.split())


def sections(text: str) -> list[tuple[str, str]]:
    """(heading line, body with white space squeezed) in order; text before
    the first heading has heading ''."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for line in text.split("\n"):
        if _ATX.match(line):
            out.append((line.strip(), []))
        else:
            out[-1][1].append(line)
    return [(head, squeeze("\n".join(body))) for head, body in out if head or squeeze("\n".join(body))]


def paragraphs(text: str) -> list[str]:
    return [squeeze(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _check_exact(task: Task, text: str, notes: str, said: str | None) -> bool:
    return text == task.target


def _check_sections(task: Task, text: str, notes: str, said: str | None) -> bool:
    """The same headings and section bodies, in the same order (blank lines free)."""
    return sections(text) == sections(task.target)


def _check_notes_outline(task: Task, text: str, notes: str, said: str | None) -> bool:
    """The draft untouched and every heading title in the notes, in order."""
    if squeeze(text) != squeeze(task.draft):
        return False
    position = 0
    for title in task.detail:
        found = notes.find(title, position)
        if found < 0:
            return False
        position = found + len(title)
    return True


def _check_split(task: Task, text: str, notes: str, said: str | None) -> bool:
    """The same words; the paragraph named in ``detail`` now two, cut at a
    sentence end, neither part under a fifth of the whole."""
    if squeeze(text) != squeeze(task.draft):
        return False
    before, after = paragraphs(task.draft), paragraphs(text)
    if len(after) != len(before) + 1:
        return False
    whole = squeeze(task.detail[0])
    for i in range(len(after) - 1):
        first, second = after[i], after[i + 1]
        if f"{first} {second}" == whole:
            return first[-1:] in ".!?:\"')" and min(len(first), len(second)) >= len(whole) / 5
    return False


def _check_declined(task: Task, text: str, notes: str, said: str | None) -> bool:
    """A goal left to the writer, and the writer told so: the draft as it was, nothing in the
    notes, and ``done``'s summary beginning ``detail[0]`` ("Left for the writer:", whether the
    model said it or the editor's goal hold did). A model that answers a request for prose with
    the outline in the notes, or with a look and "Nothing to fix.", has not declined; nor has a
    baseline, which says nothing."""
    return text == task.draft and not notes.strip() and said is not None and said.startswith(task.detail[0])


CHECKS = {
    "exact": _check_exact,
    "sections": _check_sections,
    "notes-outline": _check_notes_outline,
    "split": _check_split,
    "declined": _check_declined,
}


def check(task: Task, text: str, notes: str = "", said: str | None = None) -> bool:
    """Did an outcome (the draft and notes after a session, and what its ``done`` said: see
    ``done_summary``) solve the task?"""
    return CHECKS[task.check](task, text, notes, said)


def done_summary(stream: str) -> str | None:
    """What a session's last ``done`` said, or None (no ``done``, or no session)."""
    from infitool_edit.commands import CommandError, parse

    for line in reversed(stream.split("\n")):
        if line.startswith("> done"):
            try:
                return parse(line[2:]).summary
            except CommandError:
                return None
    return None
