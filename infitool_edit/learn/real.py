"""Lessons on real drafts with real goals: what to do with a commit message.

Synthetic tasks teach proofreading and section edits on short drafts with goals in a few
fixed wordings, so a model trained on them alone proofreads whatever it is asked: given a
real commit's "Update the error message" it checks the spelling and changes words the commit
never touched. These lessons read the TRAIN split's revision pairs (never a held-out file) and
teach from the commit itself which goals the model can serve:

- ``realtypos``: a commit whose change only respells words (``respelling``) is a proofreading
  goal in a writer's own words ("Fix typos (#1113)", "ACII -> ASCII"). Expert: the proofreading
  session from the older text to the newer (``plan.proofreading_script``), so a real draft's
  other ``check`` findings are passed over as the commit passed over them.
- ``decline``: a commit that does more, whose message names neither proofreading nor sections.
  Expert: ``done`` with ``DECLINE_SUMMARY``, nothing changed; the writer is told what the
  model does instead.
- ``realdrafts``: the older texts as drafts for the synthetic goals (typos added, a clean
  draft, a section moved, renamed or added), so that declining follows the goal, not how long
  or how real a draft looks.

A message that names proofreading over a change that is more than respelling teaches
nothing either way, and is left out; so are goals about sections, which the synthetic
structure tasks teach. A commit message repeated across many files (a typo sweep) gives at
most ``PER_MESSAGE`` lessons of each kind, so one sweep does not become the lesson.
"""

from __future__ import annotations

import difflib
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from infitool_edit.commands.grammar import slugify
from infitool_edit.learn.goals import proofreading_goal, structure_goal
from infitool_edit.learn.plan import PlanError, play, proofreading_script, quote
from infitool_edit.learn.synth import DECLINE_SUMMARY, FIXED_SUMMARY, add_typos
from infitool_edit.learn.tasks import Task
from infitool_edit.learn.traces import Pair, trace_task

REAL_KINDS = ("realtypos", "decline", "realdrafts")
PROOFREADING_MESSAGE = re.compile(
    r"typo|spell|grammar|proofread|misspel|copy-?edit|wording|punctuat|\bnits?\b", re.I)
SECTION_MESSAGE = re.compile(r"section|heading|rename|move|outline|notes|split|paragraph|title", re.I)
PER_MESSAGE = {"realtypos": 12, "decline": 2, "realdrafts": 2}
MAX_RESPELLED = 8  # words: more is a sweep over the file
_WORD = re.compile(r"^([^A-Za-z]*)([A-Za-z]+(?:['’][A-Za-z]+)?)([^A-Za-z]*)$")
_CURLY = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_SECTION_HEADING = re.compile(r"^## (.+)$", re.M)


def edit_distance(a: str, b: str, *, beyond: int = 3) -> int:
    """Letters inserted, deleted, replaced or two neighbours swapped (a keyboard slip's
    "teh" is one from "the"), or ``beyond + 1`` as soon as the lengths alone say it is larger."""
    if abs(len(a) - len(b)) > beyond:
        return beyond + 1
    before, previous = [], list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return previous[-1]


def respelling(draft: str, target: str) -> bool:
    """Whether ``target`` only respells words of ``draft``: each change one word for one
    word with the same punctuation around it, at most one letter apart in a word of four
    letters or fewer and two in a longer one (case alone, or straight quotes made curly, do
    not count), or a doubled word taken out; at least one change and at most MAX_RESPELLED."""
    if draft.count("\n") != target.count("\n") or draft.translate(_CURLY) == target.translate(_CURLY):
        return False
    old, new = draft.split(), target.split()
    changed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        neighbours = {w.lower() for w in old[max(i1 - 1, 0):i1] + old[i2:i2 + 1]}
        if tag == "delete" and i2 - i1 == 1 and old[i1].lower() in neighbours:
            changed += 1
            continue
        if tag != "replace" or i2 - i1 != j2 - j1:
            return False
        for was, now in zip(old[i1:i2], new[j1:j2]):
            a, b = _WORD.match(was), _WORD.match(now)
            if not a or not b or (a[1], a[3]) != (b[1], b[3]):
                return False
            if len(a[2]) < 3 or a[2].lower() == b[2].lower():
                return False
            if edit_distance(a[2].lower(), b[2].lower()) > (1 if len(b[2]) <= 4 else 2):
                return False
            changed += 1
    return 0 < changed <= MAX_RESPELLED


def lesson_kind(task: Task) -> str | None:
    """``realtypos``, ``decline`` or None (teaches nothing either way) for a traced commit."""
    if respelling(task.draft, task.target):
        return "realtypos"
    if PROOFREADING_MESSAGE.search(task.goal) or SECTION_MESSAGE.search(task.goal):
        return None
    return "decline"


def real_tasks(kind: str, pairs: Iterable[Pair], count: int, rng: random.Random,
               skipped: Counter | None = None) -> list[Task]:
    """Up to ``count`` lessons of ``kind`` (one of REAL_KINDS) from ``pairs`` (shuffled here)."""
    pairs = list(pairs)
    rng.shuffle(pairs)
    skipped = Counter() if skipped is None else skipped
    per_message: Counter = Counter()
    titles: list[str] = []  # headings of the drafts read so far: names for added and renamed sections
    tasks: list[Task] = []
    for traced in _traced(pairs, skipped):
        titles += [h.strip() for h in _SECTION_HEADING.findall(traced.draft) if '"' not in h]
        if len(tasks) >= count:
            break
        message = re.sub(r"\d+", "N", traced.goal.lower())
        if per_message[message] >= PER_MESSAGE[kind]:
            skipped["message repeated"] += 1
            continue
        task = _lesson(kind, traced, rng, titles)
        if task is None:
            skipped[f"not {kind}"] += 1
            continue
        per_message[message] += 1
        tasks.append(task)
    return tasks


def _traced(pairs: list[Pair], skipped: Counter) -> Iterator[Task]:
    for pair in pairs:
        result = trace_task(pair)
        if isinstance(result, str):
            skipped[f"skipped: {result}"] += 1
        else:
            yield result


def _lesson(kind: str, traced: Task, rng: random.Random, titles: list[str]) -> Task | None:
    if kind == "realdrafts":
        return _real_draft_task(traced, rng, titles)
    if lesson_kind(traced) != kind:
        return None
    if kind == "decline":
        script: list[str] = [f"done {quote(DECLINE_SUMMARY)}"]
        target = traced.draft
    else:
        try:
            script = proofreading_script(traced.draft, traced.target, summary=FIXED_SUMMARY["typos"])
        except PlanError:
            return None
        target = traced.target
    task_kind = "typos" if kind == "realtypos" else "decline"
    return Task(task_kind, traced.goal, traced.draft, target, tuple(script), traced.source,
                f"{kind}/{traced.path}", name=traced.name, detail=traced.detail)


def _real_draft_task(traced: Task, rng: random.Random, titles: list[str]) -> Task | None:
    """A synthetic goal on a real draft: typos added (twice as often), the draft as it is
    (only where ``check`` finds nothing, as a clean draft must be), or a section moved,
    renamed or added among its own ``##`` headings (three times as often)."""
    draft = traced.draft
    what = rng.choice(("typos", "typos", "clean", "move", "rename", "add"))
    if what in ("typos", "clean"):
        text = add_typos(rng, draft, rng.randint(1, 3)) if what == "typos" else draft
        summary = "Nothing to fix." if text == draft else FIXED_SUMMARY["typos"]
        try:
            script = proofreading_script(text, draft, summary=summary)
        except PlanError:
            return None
        if text == draft and script != ["check", f"done {quote(summary)}"]:
            return None  # check finds something on this real draft: not a clean one
        return Task("typos" if text != draft else "clean", proofreading_goal(what, rng), text, draft,
                    tuple(script), traced.source, f"realdrafts/{traced.path}", name=traced.name)
    headings = [h.strip() for h in _SECTION_HEADING.findall(draft)]
    slugs = [slugify(h) for h in headings]
    if len(headings) < 3 or len(set(slugs)) < len(slugs) or not all(slugs):
        return None
    i, j = rng.sample(range(len(headings)), 2)
    script = ["outline", "goal"]
    if what == "move":
        if j == i - 1:
            return None  # already there
        goal = structure_goal("move", rng, which=headings[i], after=headings[j])
        script += [f"move #{slugs[i]} #{slugs[j]}", 'done "Moved the section."']
    else:
        new = rng.choice(titles)  # another draft's heading
        if slugify(new) in slugs:
            return None
        if what == "rename":
            goal = structure_goal("rename", rng, old=headings[i], new=new)
            script += [f"replace {quote('## ' + headings[i])} {quote('## ' + new)}", 'done "Renamed the section."']
        else:
            goal = structure_goal("add", rng, new=new, after=headings[j])
            script += [f"insert #{slugs[j]} {quote('## ' + new + chr(10) + chr(10))}",
                       f"done {quote(f'Added the section {quote(new)}.')}"]
    try:
        target = play(draft, script).text
    except ValueError:
        return None
    return Task("structure", goal, draft, target, tuple(script), traced.source, f"realdrafts/{traced.path}",
                name=traced.name)
