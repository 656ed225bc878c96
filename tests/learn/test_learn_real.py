"""Lessons from real commits: which changes count as respelling, which goals are declined,
and that every lesson replays through the real editor."""

import itertools
import random
from collections import Counter

import pytest

from infitool_edit.learn import corpus
from infitool_edit.learn.real import lesson_kind, real_tasks, respelling
from infitool_edit.learn.render import Renderer
from infitool_edit.learn.synth import DECLINE_SUMMARY
from infitool_edit.learn.tasks import Task, render_task
from infitool_edit.learn.traces import pairs

DRAFT = "The keeper lit the lamp at dusk.\n\nShips passed the rocks in the the fog.\n"


@pytest.mark.parametrize("target, respelt", [
    ("The keeper lit the lamp at dusk.\n\nShips passed the rocks in the fog.\n", True),  # a doubled word out
    ("The keeper lit the lamb at dusk.\n\nShips passed the rocks in the the fog.\n", True),
    ("The keeper lit the lamp at dusk!\n\nShips passed the rocks in the the fog.\n", False),  # punctuation
    ("The Keeper lit the lamp at dusk.\n\nShips passed the rocks in the the fog.\n", False),  # case alone
    ("The keeper lit the lamp at dawn.\n\nShips passed the rocks in the the fog.\n", False),  # another word
    ("The keeper lit a lamp at dusk.\n\nShips passed the rocks in the the fog.\n", False),  # a short word
    ("The keeper lit the lamp at dusk.\nShips passed the rocks in the the fog.\n", False),  # a line less
    ("The keeper lit the old lamp at dusk.\n\nShips passed the rocks in the the fog.\n", False),  # a word more
    (DRAFT, False),
])
def test_a_respelling_changes_words_by_a_letter_or_two_and_nothing_else(target, respelt):
    assert respelling(DRAFT, target) is respelt


def test_straight_quotes_made_curly_are_not_a_respelling():
    assert not respelling("It's the keeper's lamp.\n", "It’s the keeper’s lamp.\n")
    assert respelling("Teh keeper's lamp.\n", "The keeper's lamp.\n")


def _traced(goal: str, target: str) -> Task:
    return Task("traces", goal, DRAFT, target, ("done",), "made-up", "doc.md")


def test_the_change_decides_a_typo_lesson_and_the_message_only_keeps_declines_away_from_proofreading():
    respelt = "The keeper lit the lamp at dusk.\n\nShips passed the rocks in the fog.\n"
    rewritten = "The keeper lit the lamp at dusk.\n\nShips waited for the tide.\n"
    assert lesson_kind(_traced("Update ch3 for 2024", respelt)) == "realtypos"
    assert lesson_kind(_traced("Update ch3 for 2024", rewritten)) == "decline"
    assert lesson_kind(_traced("Fix the error message", rewritten)) == "decline"  # "fix" alone is no proofreading
    assert lesson_kind(_traced("Fix typos and wording", rewritten)) is None
    assert lesson_kind(_traced("Rename the section on ships", rewritten)) is None


def test_lessons_from_a_real_history_replay_and_a_decline_changes_nothing():
    if not (corpus.data_dir() / "rust-rfcs.bundle").is_file():
        pytest.skip(f"rust-rfcs.bundle is not in {corpus.data_dir()}")
    spec = next(b for b in corpus.BUNDLES if b.name == "rust-rfcs")
    sample = list(itertools.islice(pairs(corpus.checkout("rust-rfcs"), spec.globs, source="rust-rfcs", split="train"),
                                   500))
    skipped = Counter()
    lessons = {kind: real_tasks(kind, sample, 3, random.Random(kind), skipped) for kind in ("realtypos", "decline",
                                                                                            "realdrafts")}
    assert all(len(tasks) == 3 for tasks in lessons.values()), (lessons, skipped)
    with Renderer() as renderer:
        for kind, tasks in lessons.items():
            for task in tasks:
                record = render_task(renderer, task)  # raises unless the editor reaches the target exactly
                commands = [line[2:] for line in record["stream"].split("\n") if line.startswith("> ")]
                if kind == "decline":
                    assert task.target == task.draft and commands == [f'done "{DECLINE_SUMMARY}"']
                if kind == "realtypos":
                    assert task.target != task.draft and respelling(task.draft, task.target)
                    assert commands[0] == "check" and task.path.startswith("realtypos/")
