"""Expert edit plans and traces of real revision histories."""

import random
import subprocess
from pathlib import Path

import pytest

from infitool_edit.learn import corpus
from infitool_edit.learn.plan import PlanError, edit_script, normalize, play
from infitool_edit.learn.render import Renderer
from infitool_edit.learn.tasks import render_task
from infitool_edit.learn.traces import Pair, code_share, pairs, trace_task, unwrap, write_traces

EXAMPLE = normalize((Path(__file__).parents[2] / "examples" / "draft.md").read_text())


def mutate(rng: random.Random, text: str) -> str:
    """Random writer-like changes: words replaced, lines dropped or added."""
    lines = text.split("\n")[:-1]
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(lines))
        kind = rng.choice(("word", "word", "delete", "insert", "section"))
        words = lines[i].split(" ")
        if kind == "word" and len(words) > 2:
            words[rng.randrange(len(words))] = rng.choice(("brisk", "the", "", "dark,", "Lamp"))
            lines[i] = " ".join(words)
        elif kind == "delete" and len(lines) > 3:
            del lines[i]
        elif kind == "insert":
            lines.insert(i, rng.choice(("A new line.", "", "The the keeper slept.")))
        else:
            lines[i:i] = ["## Spring", "", "The first calm day of the year.", ""]
    return normalize("\n".join(lines))


@pytest.mark.parametrize("scan", [False, True])
def test_edit_plans_replay_to_exactly_the_target(scan):
    rng = random.Random(7)
    for _ in range(40):
        target = mutate(rng, EXAMPLE)
        script = edit_script(EXAMPLE, target, scan=scan)
        assert script[-1].startswith("done ")
        assert play(EXAMPLE, script).text == target


def test_a_writer_looks_before_editing_and_fixes_words_with_short_search_strings():
    target = EXAMPLE.replace("Teh", "The").replace("## Winter\n", "## Spring\n\nA calm.\n\n## Winter\n")
    script = edit_script(EXAMPLE, target)
    assert script[0] == "outline"
    first_edit = next(i for i, line in enumerate(script) if line.startswith(("replace", "insert")))
    assert script[first_edit - 1].startswith("read ")
    assert 'replace "Teh" "The"' in script
    inserts = [line for line in script if line.startswith("insert")]
    assert inserts[0].endswith('"## Spring\\n\\n"')  # the heading before the sentence inside it


def test_proofreading_reads_the_whole_draft_window_by_window():
    script = edit_script(EXAMPLE, EXAMPLE, scan=True, summary="Nothing to fix.")
    reads = [line for line in script if line.startswith("read ")]
    covered = set()
    for line in reads:
        a, _, b = line.removeprefix("read ").partition("-")
        covered |= set(range(int(a), int(b or a) + 1))
    assert covered == set(range(1, 26))
    assert script[-1] == 'done "Nothing to fix."' and not any(l.startswith(("replace", "insert")) for l in script)


def test_an_edit_deep_in_a_long_line_reads_that_stretch_first():
    long = " ".join(f"w{i} the" for i in range(150))
    draft = f"# T\n\n{long}\n"
    target = draft.replace("w120 the", "w120 thee")
    script = edit_script(draft, target)
    span = next(line for line in script if line.startswith("read 3:"))
    assert script.index(span) == len(script) - 3
    assert play(draft, script).text == target


def test_text_the_language_cannot_carry_is_refused():
    with pytest.raises(PlanError):
        edit_script("a\x01b\n", "ab\n")


def test_unwrap_joins_prose_only():
    text = (
        "# Title\n\nA paragraph that was\nhard wrapped at\nforty columns.\n\n- a list item\n- another\n\n"
        "```\ncode line one\ncode line two\n```\n\nHeading\n=======\n\nPEP: 8\nTitle: Style\n"
    )
    assert unwrap(text) == (
        "# Title\n\nA paragraph that was hard wrapped at forty columns.\n\n- a list item\n- another\n\n"
        "```\ncode line one\ncode line two\n```\n\nHeading\n=======\n\nPEP: 8\nTitle: Style\n"
    )
    # Old plain-text PEPs indent the whole body by four spaces: that is prose, not code.
    pep = "PEP: 1\n\nAbstract\n\n    This PEP explains\n    what a PEP is.\n\n        code_example()\n"
    assert "    This PEP explains what a PEP is." in unwrap(pep)
    assert code_share(unwrap(pep)) < 0.5
    assert code_share("```\nfn main() {}\nlet x = 1;\n```\nOk.\n") > 0.5


def pair(old: str, new: str, message: str = "Fix a word") -> Pair:
    return Pair("test", "doc.md", "0" * 40, message, old.encode(), new.encode())


def test_reflows_mass_changes_and_code_are_skipped_with_a_reason():
    prose = "".join(f"Line {i} of a paragraph that\nwraps here.\n\n" for i in range(12))
    assert trace_task(pair(prose, prose.replace("that\nwraps here.", "that wraps\nhere."))) == "reflow only"
    assert trace_task(pair(prose, prose.replace("Line", "Row"))) == "mass change"
    code = "```\n" + "let x = 1;\n" * 30 + "```\nOk.\n"
    assert trace_task(pair(code, code.replace("Ok", "Fine"))) == "mostly code"
    assert trace_task(pair(prose, prose, message="")) == "no message"
    task = trace_task(pair(prose, prose.replace("Line 3 of", "Line 3 in")))
    assert task.goal == "Fix a word" and task.target == unwrap(prose.replace("Line 3 of", "Line 3 in"))


def test_traces_of_a_small_repository(tmp_path):
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    versions = [EXAMPLE, EXAMPLE.replace("Teh", "The"), EXAMPLE.replace("Teh", "The").replace("## Summer", "## High Summer")]
    for i, text in enumerate(versions):
        (repo / "draft.md").write_text(text)
        (repo / "code.py").write_text(f"x = {i}\n")
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", f"Revision {i}\n\nLonger body."], check=True)
    summary = write_traces(repo, ("*.md",), tmp_path / "out")
    assert summary["pairs"] == 2 and summary["streams"] == 2 and summary["replay failures"] == 0
    lines = (tmp_path / "out" / "streams.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"@goal Revision 1\\n' in lines[0]


BUNDLE_SAMPLE = 15  # pairs per bundle in this test; `infitool-edit traces` checks them all


@pytest.mark.parametrize("bundle", [b.name for b in corpus.BUNDLES])
def test_traces_of_the_real_histories_replay_exactly(bundle):
    spec = next(b for b in corpus.BUNDLES if b.name == bundle)
    if not (corpus.data_dir() / f"{bundle}.bundle").is_file():
        pytest.skip(f"{bundle}.bundle is not in {corpus.data_dir()}")
    repo = corpus.checkout(bundle)
    tasks = []
    for n, p in enumerate(pairs(repo, spec.globs, source=bundle)):
        if n % 7:  # a spread over the history, not just its first commits
            continue
        task = trace_task(p)
        if not isinstance(task, str):
            tasks.append(task)
        if len(tasks) == BUNDLE_SAMPLE:
            break
    assert len(tasks) == BUNDLE_SAMPLE
    with Renderer() as renderer:
        for task in tasks:
            record = render_task(renderer, task)  # raises unless the editor reaches the newer text exactly
            assert record["stream"].startswith(f"@goal {task.goal}\n@view {task.name},")
