"""Synthetic tasks, their checkers, and the evaluation's scoring."""

import difflib
import json
import random
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infitool_edit.cli import app
from infitool_edit.commands import slugify
from infitool_edit.learn import corpus
from infitool_edit.learn.evaluate import (
    dictionary_fix,
    evaluate,
    expert_backend,
    similarity,
    suite_tasks,
    word_edits,
)
from infitool_edit.learn.plan import tokens
from infitool_edit.learn.render import Renderer
from infitool_edit.learn.synth import DECLINE_SUMMARY, LEFT_FOR_THE_WRITER, add_mechanics, add_typos, sources, synthetic_tasks
from infitool_edit.learn.tasks import check, done_summary, render_task

DOCS = Path(__file__).parents[2] / "docs"


@pytest.fixture(scope="module")
def prose(tmp_path_factory):
    """A folder of markdown with sections of plain prose (built here, so the
    test does not depend on what the docs say today)."""
    folder = tmp_path_factory.mktemp("prose")
    rng = random.Random(3)
    words = ("keeper lamp light ships weather winter harbour glass signal night storm log entries family "
             "coast boat oil watch morning evening fog rocks").split()
    for d in range(6):
        parts = [f"# Chapter {d}"]
        for s in range(4):
            parts.append(f"## Part {d} {s} of the Year")
            for _ in range(2):
                # No word twice in a sentence: a doubled word is a slip, and the pool drops such prose.
                sentences = [" ".join(rng.sample(words, rng.randint(6, 11))).capitalize() + "."
                             for _ in range(rng.randint(3, 5))]
                parts.append(" ".join(sentences))
        (folder / f"doc{d}.md").write_text("\n\n".join(parts) + "\n")
    return folder


@pytest.fixture(scope="module")
def pool(prose):
    return sources(corpus.Document("t", p.name, p.read_text(), "MIT") for p in sorted(prose.glob("*.md")))


def test_every_kind_renders_to_a_stream_that_passes_its_checker(pool):
    rng = random.Random(0)
    kinds = {"typos": 4, "mechanics": 4, "structure": 10, "process": 3, "clean": 2}
    tasks = list(synthetic_tasks(rng, pool, kinds))
    assert {k: sum(t.kind == k for t in tasks) for k in kinds} == kinds
    assert len({t.path for t in tasks if t.kind == "structure"}) >= 3  # add, rename, move, notes, split
    with Renderer() as renderer:
        for task in tasks:
            record = render_task(renderer, task)
            assert record["task"] == task.kind and record["stream"].startswith(f"@goal {task.goal}")
    assert all(t.draft == t.target for t in tasks if t.kind == "clean")
    process = next(t for t in tasks if t.kind == "process")
    assert process.script[-1].startswith("done") and any(line.startswith("note ") for line in process.script)


def test_a_structure_expert_looks_rereads_the_goal_and_acts_with_strings_from_those_answers(pool):
    """A small recurrent model copies well from the last few hundred bytes, not
    from a goal shown before the whole draft: so the expert runs ``outline``
    and ``goal``, then acts once, naming only what those two answers hold."""
    tasks = list(synthetic_tasks(random.Random(3), pool, {"structure": 30}))
    assert {"structure/add", "structure/rename", "structure/move", "structure/notes"} <= {t.path for t in tasks}
    for task in tasks:
        assert task.script[:2] == ("outline", "goal") and task.script[-1].startswith("done ")
        act = task.script[2]
        names = re.findall(r'"([^"]+)"', task.goal)
        if task.path == "structure/add":
            new, after = names if f"## {names[0]}" in act else names[::-1]  # some wordings name "after" first
            assert act.startswith(f"insert #{slugify(after)} ") and f"## {new}" in act
        elif task.path == "structure/rename":
            assert act == f'replace "## {names[0]}" "## {names[1]}"'
        elif task.path == "structure/move":
            assert act == f"move #{slugify(names[0])} " + (f"#{slugify(names[1])}" if len(names) == 2 else "$")
        elif task.path == "structure/split":
            assert task.script[2] == f'read "{names[0]}"' and task.script[3].startswith('replace "')


def test_goals_are_worded_many_ways_and_held_out_data_asks_in_words_training_never_used(pool):
    """A model taught four fixed sentences learns the sentences: goals vary in
    wording, and the held-out split (what eval asks) uses phrasings training
    never shows, so eval measures whether the model reads what is asked."""
    from infitool_edit.learn import goals

    def wordings(heldout):
        tasks = synthetic_tasks(random.Random(5), pool, {"typos": 30, "structure": 30}, heldout=heldout)
        return {re.sub(r'"[^"]*"', '""', t.goal).rstrip(".").lower() for t in tasks}

    seen, unseen = wordings(False), wordings(True)
    assert len(seen) >= 10 and len(unseen) >= 5 and not seen & unseen
    families = [goals._TYPOS, goals._MECHANICS, goals._PROOFREAD, *goals._STRUCTURE.values()]
    assert all(f.train and f.heldout and not set(f.train) & set(f.heldout) for f in families)
    assert "Fix the typos" in goals._TYPOS.train  # the README's first goal is one training asks
    again = [t.goal for t in synthetic_tasks(random.Random(5), pool, {"typos": 30, "structure": 30}, heldout=True)]
    assert again == [t.goal for t in synthetic_tasks(random.Random(5), pool, {"typos": 30, "structure": 30},
                                                      heldout=True)]


def test_training_asks_for_made_up_names_to_teach_copying_and_held_out_data_only_for_real_ones(pool):
    """A small model half-copies a name and finishes it as a likely heading
    ("Scala" became "Scalability"): training draws half the new names as real
    heading words in an order no heading has, so only copying gets them right;
    held-out tasks (what eval asks) name only real headings."""
    real = {t for s in pool for t, _ in s.sections}

    def new_names(heldout):
        tasks = synthetic_tasks(random.Random(8), pool, {"structure": 80}, heldout=heldout)
        return [t.target.split("\n") for t in tasks if t.path in ("structure/add", "structure/rename")]

    def made_up(targets):
        return [h for lines in targets for h in lines if h.startswith("## ") and h[3:] not in real]

    trained, heldout = new_names(False), new_names(True)
    assert len(trained) >= 10 and len(heldout) >= 10
    assert len(made_up(trained)) >= len(trained) / 4
    assert made_up(heldout) == []


def test_a_request_for_new_prose_is_declined_at_once_and_only_an_untouched_draft_passes(pool):
    """The model proofreads and edits sections; asked to write, it says so instead of answering
    with what it can do (the outline copied into the notes was a built-in model's answer)."""
    from infitool_edit.learn import goals

    assert goals._ASKS.train and goals._ASKS.heldout and not set(goals._ASKS.train) & set(goals._ASKS.heldout)
    trained = list(synthetic_tasks(random.Random(4), pool, {"asks": 12}))
    heldout = list(synthetic_tasks(random.Random(4), pool, {"asks": 12}, heldout=True))
    assert len(trained) == len(heldout) == 12
    with Renderer() as renderer:
        for task in trained + heldout:
            assert task.kind == "decline" and task.path == "asks" and task.target == task.draft
            assert task.script == (f'done "{DECLINE_SUMMARY}"',) and task.draft.count("\n## ") >= 2
            record = render_task(renderer, task)
            assert record["stream"].startswith(f"@goal {task.goal}")
            assert check(task, task.draft, "", DECLINE_SUMMARY)
            assert check(task, task.draft, "", done_summary(record["stream"]))
            assert not check(task, task.draft, "Sections: Part 1 0 of the Year", DECLINE_SUMMARY)  # the outline in the notes
            assert not check(task, task.draft, "", "Nothing to fix.")  # a look is not a decline
            assert check(task, task.draft, "", "Left for the writer: I was unsure what the goal asks.")
            assert not check(task, task.draft, "")  # nor is saying nothing (a baseline)
            assert not check(task, task.draft.replace("\n## ", "\n### ", 1), "", DECLINE_SUMMARY)
    shape = lambda tasks: {re.sub(r'"[^"]*"', '""', t.goal).rstrip(".").lower() for t in tasks}  # noqa: E731
    assert not shape(trained) & shape(heldout)
    from infitool_edit.agent.held_back import GOAL_ENDING  # the editor's goal hold declines in the same words

    assert GOAL_ENDING.decode().startswith(f'done "{LEFT_FOR_THE_WRITER}')
    asked = {goals.ask_goal(random.Random(seed), section="The Fog Signal of API Design") for seed in range(40)}
    assert {"Write a paragraph about the fog signal of API design.", 'Expand the section "The Fog Signal of API Design".'} & asked


def test_prose_with_a_slip_of_its_own_is_not_taken_as_clean():
    """A doubled word left in the source would be kept by a clean draft's gold, and a
    model right to fix it would be counted as damaging good text."""
    from infitool_edit.learn.synth import prose_paragraph

    good = "The keeper trimmed the lamp every four hours and wrote the weather into the log at dawn."
    assert prose_paragraph(good)
    assert not prose_paragraph(good.replace("the weather", "the the weather"))
    assert prose_paragraph(good.replace("and wrote", "and had had wrote"))  # doubled on purpose


def test_checkers_refuse_what_does_not_solve_the_task(pool):
    rng = random.Random(1)
    tasks = list(synthetic_tasks(rng, pool, {"typos": 3, "structure": 12}))
    for task in tasks:
        if task.draft != task.target:
            assert not check(task, task.draft)  # doing nothing fails where there is work
        assert not check(task, "")
    split = [t for t in tasks if t.path == "structure/split"]
    for task in split:
        body = task.detail[0]
        middle = body.index(" ", len(body) // 2)
        assert not check(task, task.draft.replace(body, body[:middle] + "\n\n" + body[middle + 1 :]) if "." not in body[middle - 1] else "")


def test_corruptions_change_words_and_keep_the_rest(pool):
    rng = random.Random(2)
    text = "The keeper trimmed the lamp every evening before the ships passed the rocks.\n"
    typo = add_typos(rng, text, 2)
    assert typo != text and len(typo.split()) == len(text.split())
    assert add_mechanics(random.Random(5), text, 1) != text
    assert dictionary_fix("Teh lamp was recieved.") == "The lamp was received."


def test_word_edits_align_like_errant():
    assert word_edits("the lamp was lit", "the lamp was lit") == set()
    assert word_edits("teh lamp was lit", "the lamp was lit") == {(0, 1, "the")}
    # The same as difflib's alignment, token for token, on a long text where most tokens repeat.
    long = " ".join(f"the lamp was lit at {i % 7} and, again, the lamp was lit." for i in range(60))
    changed = long.replace("lit at 3", "lit near 3").replace("again, ", "")
    a, b = tokens(long), tokens(changed)
    plain = difflib.SequenceMatcher(None, a, b, autojunk=False)
    assert word_edits(long, changed) == {(i1, i2, "".join(b[j1:j2])) for tag, i1, i2, j1, j2 in plain.get_opcodes()
                                         if tag != "equal"}
    assert similarity(changed, long) == difflib.SequenceMatcher(None, b, a, autojunk=False).ratio() < 1.0
    assert similarity(long, long) == 1.0 and word_edits(long, long) == set()


def test_the_expert_scores_one_and_the_baselines_score_as_they_should(prose, tmp_path):
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    text = (prose / "doc1.md").read_text()
    for i, new in enumerate([text, text.replace("keeper", "warden", 1), text.replace("keeper", "warden", 2)]):
        (repo / "notes.md").write_text(new)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", f"Edit {i}"], check=True)
    report = evaluate(["typos", "mechanics", "structure", "clean", "revisions", "asks"], make_backend=expert_backend,
                      system="expert", tasks=3, seed=1, prose=prose, revisions=repo)
    for suite, systems in report.suites.items():
        expert = systems["expert"]
        assert expert["success"] == 1.0, suite
        assert expert["precision"] == expert["recall"] == 1.0, suite
        assert expert["finished_rate"] == expert["valid_commands"] == expert["applied_commands"] == 1.0
        assert systems["copy"]["edits_per_1k_words"] == 0.0
    assert report.suites["typos"]["copy"]["recall"] < 1.0
    assert report.suites["clean"]["copy"]["success"] == 1.0
    assert report.suites["asks"]["copy"]["success"] == 0.0  # the draft kept, but the writer not told
    figures = report.figures()
    assert figures["asks_declined"] == 1.0
    assert figures["typos_f05"] == figures["mechanics_success"] == figures["structure_success"] == 1.0
    assert figures["false_edits_per_1k_words"] == 0.0 and figures["revisions_precision"] == 1.0
    assert figures["revisions_copy_similarity"] < 1.0
    # Success per kind of structure task, so a model's one rate says which kinds it can do.
    kinds = figures["structure_by_kind"]
    assert kinds and all(path.startswith("structure/") and solved == count for path, (solved, count)
                         in ((p, map(int, v.split("/"))) for p, v in kinds.items()))
    assert sum(int(v.split("/")[1]) for v in kinds.values()) == 3
    assert report.suites["structure"]["copy"]["by_kind"] != kinds  # the copy baseline solves none


def test_several_seeds_pool_their_tasks_into_one_score(prose):
    """`eval --seed 1 --seed 2`: each seed's tasks, run with their own seed, scored as one suite."""
    one = evaluate(["typos"], make_backend=expert_backend, system="expert", tasks=2, seed=1, prose=prose)
    twice = evaluate(["typos"], make_backend=expert_backend, system="expert", tasks=2, seed=[1, 1], prose=prose)
    assert twice.suites["typos"]["expert"]["tasks"] == 4
    # Counts are pooled before the rates: the same set twice gives the same rates.
    for system in ("dictionary", "copy"):
        assert {k: v for k, v in twice.suites["typos"][system].items() if k not in ("tasks", "by_kind")} == \
            {k: v for k, v in one.suites["typos"][system].items() if k not in ("tasks", "by_kind")}
    pooled = evaluate(["typos"], make_backend=expert_backend, system="expert", tasks=2, seed=[1, 2], prose=prose)
    goals = [t.goal for each in (1, 2) for t in suite_tasks("typos", 2, seed=each, prose=prose)]
    assert pooled.suites["typos"]["expert"]["tasks"] == len(goals) == 4 and len(set(goals)) > 2
    result = CliRunner().invoke(app, ["eval", "--expert", "--suite", "typos", "--prose", str(prose), "--tasks", "2",
                                      "--seed", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["tasks"] == 4


def test_the_built_in_model_runs_through_the_same_evaluation(prose):
    from infitool_edit.agent.headless import make_backend

    report = evaluate(["typos"], make_backend=lambda task: make_backend(), system="built-in", tasks=2, prose=prose)
    figures = report.figures()
    assert figures["tasks"] == 2
    assert figures["valid_commands"] == 1.0  # the grammar mask holds even random weights to the language
    assert 0 < figures["commands_per_task"] <= max(2 * len(t.script) + 5 for t in suite_tasks("typos", 2, prose=prose))


def test_the_proofreading_expert_takes_right_findings_with_fix_and_passes_over_wrong_ones():
    from infitool_edit.learn.plan import play, proofreading_script

    draft = "# Title\n\nTeh lamp was was lit .\n\nA name: Zorblax recieve it.\n"
    every_finding_right = draft.replace("Teh lamp was was lit .", "The lamp was lit.").replace("recieve", "receive")
    script = proofreading_script(draft, every_finding_right, summary="Fixed.")
    assert script == ["check", "fix", "check", 'done "Fixed."']
    # "recieve" is meant here (say, a quotation): line 5's finding is wrong, line 3's are right.
    meant = draft.replace("Teh lamp was was lit .", "The lamp was lit.")
    script = proofreading_script(draft, meant, summary="Fixed.")
    assert script == ["check", "fix 3", "check", 'done "Fixed."']
    assert play(draft, script).text == meant
    # A right and a wrong finding on one line: the right one by replace.
    mixed = draft.replace("Teh", "The")
    script = proofreading_script(draft, mixed, summary="Fixed.")
    assert 'replace 3 "Teh" "The"' in script and play(draft, script).text == mixed
