"""``infitool-edit eval``: how well a model edits, on tasks it never trained on.

Suites: ``typos``, ``mechanics``, ``structure``, ``clean`` (synthetic, from the
HELD-OUT split of the corpus, or from any folder of markdown with ``--prose``)
and ``revisions`` (held-out real revisions of the bundles, or any git
repository with ``--revisions``). Each task runs the real headless runner on
a draft in a scratch folder, with a command budget, and is judged by its
checker (:func:`infitool_edit.learn.tasks.check`).

Beside the model, on the same tasks: *copy* (hand back the draft),
*dictionary* (codespell's one-fix misspellings corrected word by word),
*check* (every finding of the ``check`` command applied, check after check:
the editor's proofreading tool with no judgment, so the model's own part
shows as the difference), and
on request *expert* (the tasks' own scripted sessions through the same
runner: every metric should be 1.0, which checks the checkers).

Metrics, summed over a suite's tasks: word-level edit precision, recall and
F0.5 against the gold edits (difflib on word, mark and space tokens, an edit
counting when span and replacement both match, as ERRANT does); success (the
checker passes); false edits per 1,000 words on clean drafts; the share that
ended with ``done`` within budget; the share of command lines that are valid
commands (they parse) and that applied; commands and seconds per task.
"""

from __future__ import annotations

import difflib
import functools
import io
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infitool_edit.learn import corpus
from infitool_edit.learn.plan import tokens
from infitool_edit.learn.render import count_commands
from infitool_edit.learn.tasks import Task, check, done_summary

SUITES = ("typos", "mechanics", "structure", "revisions", "clean", "asks")
BASELINES = ("copy", "dictionary", "check")
DEFAULT_TASKS = 20


class EvalError(ValueError):
    """An evaluation that cannot run (one line)."""


# --- the tasks -----------------------------------------------------------------------


def _prose_documents(folder: Path) -> list[corpus.Document]:
    files = sorted(p for p in Path(folder).rglob("*.md") if p.is_file())
    if not files:
        raise EvalError(f"{folder}: no markdown files")
    out = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(corpus.Document(f"prose:{Path(folder).name}", path.relative_to(folder).as_posix(), text, "?"))
    return out


def suite_tasks(suite: str, count: int, *, seed: int = 0, prose: Path | None = None,
                revisions: Path | None = None) -> list[Task]:
    """``count`` tasks of ``suite``, the same for the same arguments. The synthetic suites ask
    in the held-out phrasings (``goals``): prose and wording the model never trained on."""
    from infitool_edit.learn import synth

    rng = random.Random(f"{seed}:{suite}")
    if suite == "revisions":
        return _revision_tasks(rng, count, revisions)
    documents = _prose_documents(prose) if prose is not None else corpus.documents("heldout")
    pool = synth.sources(documents)
    if not pool:
        raise EvalError("no usable prose for the synthetic suites")
    return list(synth.synthetic_tasks(rng, pool, {suite: count}, heldout=True))


def _revision_tasks(rng: random.Random, count: int, repo: Path | None) -> list[Task]:
    from infitool_edit.learn.traces import pairs, trace_task

    if repo is not None:
        sources = [(Path(repo), ("*.md", "*.rst"), Path(repo).resolve().name, "all")]
    else:
        sources = [(corpus.checkout(b.name), b.globs, b.name, "heldout") for b in corpus.BUNDLES]
    tasks: list[Task] = []
    for i, (path, globs, source, split) in enumerate(sources):
        candidates = list(pairs(path, globs, source=source, split=split))
        rng.shuffle(candidates)
        wanted = (count - len(tasks)) // (len(sources) - i)
        for pair in candidates:
            if wanted <= 0:
                break
            task = trace_task(pair)
            if not isinstance(task, str):
                tasks.append(task)
                wanted -= 1
    return tasks


# --- the systems ------------------------------------------------------------------------


@dataclass
class Outcome:
    text: str
    notes: str = ""
    stream: str = ""  # empty for the baselines (no session)
    seconds: float = 0.0


def dictionary_fix(text: str) -> str:
    """codespell's dictionary applied word by word (one-fix entries only)."""
    from infitool_edit.document.proofread import codespell_pairs, match_case

    _, fix = codespell_pairs()

    def repl(m: re.Match) -> str:
        word = m.group()
        right = fix.get(word.lower())
        return match_case(word, right) if right else word

    return re.sub(r"[A-Za-z]+", repl, text)


def check_fix(text: str) -> str:
    """Every finding of ``check`` applied as the replace it spells, until a
    check finds nothing (at most CHECK_ROUNDS checks)."""
    from infitool_edit.commands import parse
    from infitool_edit.document import Workspace
    from infitool_edit.document.observation import check_rows
    from infitool_edit.learn.plan import CHECK_ROUNDS

    workspace = Workspace(text)
    for _ in range(CHECK_ROUNDS):
        applied = 0
        for number, strings in check_rows(workspace.apply(parse("check")).render()):
            try:
                workspace.apply(parse(f"replace {number} {strings}"))
                applied += 1
            except ValueError:
                pass  # an earlier fix on the line took its text away
        if not applied:
            break
    return workspace.text


class SessionRunner:
    """Runs a backend on a task through the real headless runner, in a
    scratch folder (in memory where there is ``/dev/shm``)."""

    def __init__(self) -> None:
        shm = Path("/dev/shm")
        self.root = Path(tempfile.mkdtemp(prefix="infitool-eval-", dir=str(shm) if shm.is_dir() else None))
        self.count = 0

    def run(self, task: Task, backend, budget: int, seed: int) -> Outcome:
        from rich.console import Console

        from infitool_edit.agent.headless import run_headless
        from infitool_edit.agent.stream import stream_dir_for
        from infitool_edit.session.editing import EditingSession

        self.count += 1
        folder = self.root / f"t{self.count}"
        folder.mkdir()
        path = folder / task.name
        path.write_text(task.draft, encoding="utf-8")
        started = time.perf_counter()
        # No writer sits at an evaluation to answer before a large deletion: the model's own
        # commands are what is measured (moving a section deletes it first), so all are allowed.
        run_headless(path, task.goal, backend=backend, max_commands=budget, seed=seed,
                     console=Console(file=io.StringIO(), width=200), large_deletions="allow")
        seconds = time.perf_counter() - started
        with EditingSession.open(path, author="writer") as session:
            text, notes = session.workspace.text, session.workspace.notes
            stream = (stream_dir_for(session.history) / "stream.txt").read_text(encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        return Outcome(text, notes, stream, seconds)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def budget_for(task: Task) -> int:
    """Room for the expert's session twice over, and a few commands more."""
    return 2 * len(task.script) + 5


# --- scoring ---------------------------------------------------------------------------------


# Scoring a task aligns long token lists (a real revision's draft is thousands of tokens, most of
# them spaces and marks, so difflib without autojunk is slow: ~97% of a revisions suite's time was
# here, 3 s an alignment). Each system of a task aligns the same draft against the same target and
# most results are the draft itself (copy, and a model that declines), so the alignments are
# computed once per pair of texts, and an unchanged text none at all.


@functools.lru_cache(maxsize=32)
def word_edits(source: str, result: str) -> frozenset[tuple[int, int, str]]:
    """The edits that turn ``source`` into ``result``: (first token, last
    token, replacement), on word, mark and space tokens."""
    if source == result:
        return frozenset()
    a, b = tokens(source), tokens(result)
    return frozenset((i1, i2, "".join(b[j1:j2]))
                     for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
                     if tag != "equal")


@functools.lru_cache(maxsize=32)
def similarity(text: str, target: str) -> float:
    """difflib's ratio of the two texts' tokens (1.0 when they are equal)."""
    if text == target:
        return 1.0
    return difflib.SequenceMatcher(None, tokens(text), tokens(target), autojunk=False).ratio()


def words(text: str) -> int:
    return len(re.findall(r"\w+", text))


@dataclass
class Score:
    """Counts over one suite for one system; the rates are derived."""

    true_edits: int = 0
    proposed_edits: int = 0
    gold_edits: int = 0
    draft_words: int = 0
    finished: int = 0
    commands: int = 0
    valid: int = 0
    applied: int = 0
    seconds: float = 0.0
    similarity: float = 0.0  # summed similarity of the result to the target
    sessions: bool = False  # a system that runs sessions (has commands)
    # Per kind of task (the task's path, e.g. "structure/add"): [solved, tasks]. A suite's one
    # success rate hides which kinds a model can do (moves) and which it cannot (renames).
    kinds: dict[str, list[int]] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return sum(count for _, count in self.kinds.values())

    @property
    def solved(self) -> int:
        return sum(solved for solved, _ in self.kinds.values())

    def add(self, task: Task, outcome: Outcome) -> None:
        from infitool_edit.commands import CommandError, parse

        gold, made = word_edits(task.draft, task.target), word_edits(task.draft, outcome.text)
        kind = self.kinds.setdefault(task.path, [0, 0])
        kind[0] += check(task, outcome.text, outcome.notes, done_summary(outcome.stream))
        kind[1] += 1
        self.true_edits += len(gold & made)
        self.proposed_edits += len(made)
        self.gold_edits += len(gold)
        self.draft_words += words(task.draft)
        self.seconds += outcome.seconds
        self.similarity += similarity(outcome.text, task.target)
        if outcome.stream:
            self.sessions = True
            lines = [line[2:] for line in outcome.stream.split("\n") if line.startswith("> ")]
            commands, errors = count_commands(outcome.stream)
            self.commands += commands
            self.applied += commands - errors
            for line in lines:
                try:
                    parse(line)
                    self.valid += 1
                except CommandError:
                    pass
            tail = outcome.stream.rstrip("\n").split("\n")
            self.finished += len(tail) >= 2 and tail[-2].startswith("> done") and tail[-1] == "@done"

    def rates(self) -> dict:
        precision = self.true_edits / self.proposed_edits if self.proposed_edits else 1.0
        recall = self.true_edits / self.gold_edits if self.gold_edits else 1.0
        f05 = 1.25 * precision * recall / (0.25 * precision + recall) if precision + recall else 0.0
        out = {
            "tasks": self.tasks,
            "success": self.solved / self.tasks if self.tasks else 0.0,
            "precision": precision,
            "recall": recall,
            "f05": f05,
            "edits_per_1k_words": 1000 * self.proposed_edits / self.draft_words if self.draft_words else 0.0,
            "similarity": self.similarity / self.tasks if self.tasks else 0.0,
            "by_kind": {path: f"{solved}/{count}" for path, (solved, count) in sorted(self.kinds.items())},
        }
        if self.sessions:
            out.update({
                "finished_rate": self.finished / self.tasks,
                "valid_commands": self.valid / self.commands if self.commands else 1.0,
                "applied_commands": self.applied / self.commands if self.commands else 1.0,
                "commands_per_task": self.commands / self.tasks,
                "seconds_per_task": self.seconds / self.tasks,
            })
        return out


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Report:
    suites: dict[str, dict[str, dict]] = field(default_factory=dict)  # suite -> system -> rates
    system: str = "model"

    def figures(self) -> dict:
        """The issue's target names, for the system under test."""
        def get(suite: str, key: str, system: str | None = None):
            return self.suites.get(suite, {}).get(system or self.system, {}).get(key)

        runs = [r for suite in self.suites.values() for name, r in suite.items() if name == self.system]
        total = sum(r["tasks"] for r in runs) or 1
        mean = lambda key: (sum(r.get(key, 0) * r["tasks"] for r in runs) / total) if runs else None  # noqa: E731
        figures = {
            "system": self.system,
            "valid_commands": mean("valid_commands"),
            "applied_commands": mean("applied_commands"),
            "finished_rate": mean("finished_rate"),
            "typos_f05": get("typos", "f05"),
            "typos_f05_dictionary": get("typos", "f05", "dictionary"),
            "typos_f05_check": get("typos", "f05", "check"),
            "mechanics_success_check": get("mechanics", "success", "check"),
            "false_edits_per_1k_words_check": get("clean", "edits_per_1k_words", "check"),
            "false_edits_per_1k_words": get("clean", "edits_per_1k_words"),
            "clean_success": get("clean", "success"),
            "mechanics_success": get("mechanics", "success"),
            "structure_success": get("structure", "success"),
            "structure_by_kind": get("structure", "by_kind"),
            "asks_declined": get("asks", "success"),
            "revisions_precision": get("revisions", "precision"),
            "revisions_recall": get("revisions", "recall"),
            "revisions_f05": get("revisions", "f05"),
            "revisions_similarity": get("revisions", "similarity"),
            "revisions_copy_similarity": get("revisions", "similarity", "copy"),
            "commands_per_task": mean("commands_per_task"),
            "seconds_per_task": mean("seconds_per_task"),
            "tasks": total if runs else 0,
        }
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}


def evaluate(suites: Iterable[str], *, make_backend: Callable[[Task], object], system: str = "model",
             tasks: int = DEFAULT_TASKS, seed: int | Sequence[int] = 0, prose: Path | None = None,
             revisions: Path | None = None, progress: Callable[[str], None] | None = None) -> Report:
    """Run ``system`` (a backend per task from ``make_backend``) and the
    baselines on each suite's tasks. Several seeds pool their tasks into each suite (``tasks``
    from each; a task two seeds draw counts twice), each task run with its own seed: one default
    set of 20 real revisions says little, and a pooled set says it with the same scoring."""
    report = Report(system=system)
    seeds = (seed,) if isinstance(seed, int) else tuple(seed)
    runner = SessionRunner()
    try:
        for suite in suites:
            if suite not in SUITES:
                raise EvalError(f"unknown suite {suite!r} (one of {', '.join(SUITES)})")
            chosen = [(task, each) for each in seeds
                      for task in suite_tasks(suite, tasks, seed=each, prose=prose, revisions=revisions)]
            if not chosen:
                raise EvalError(f"no {suite} tasks could be made")
            scores = {system: Score(), **{baseline: Score() for baseline in BASELINES}}
            for n, (task, task_seed) in enumerate(chosen, 1):
                scores[system].add(task, runner.run(task, make_backend(task), budget_for(task), task_seed))
                scores["copy"].add(task, Outcome(task.draft))
                started = time.perf_counter()
                fixed = dictionary_fix(task.draft)
                scores["dictionary"].add(task, Outcome(fixed, "", "", time.perf_counter() - started))
                started = time.perf_counter()
                fixed = check_fix(task.draft)
                scores["check"].add(task, Outcome(fixed, "", "", time.perf_counter() - started))
                if progress:
                    progress(f"{suite} {n}/{len(chosen)}")
            report.suites[suite] = {name: score.rates() for name, score in scores.items()}
    finally:
        runner.close()
    return report


def expert_backend(task: Task):
    from infitool_edit.agent.scripted import ScriptedBackend

    return ScriptedBackend(list(task.script))


COLUMNS = (
    ("success", "success"), ("precision", "P"), ("recall", "R"), ("f05", "F0.5"),
    ("edits_per_1k_words", "edits/1k w"), ("similarity", "sim"), ("finished_rate", "done"),
    ("valid_commands", "valid"), ("applied_commands", "applied"), ("commands_per_task", "cmds"),
    ("seconds_per_task", "s/task"),
)


def tables(report: Report):
    """One rich table per suite."""
    from rich.table import Table

    out = []
    for suite, systems in report.suites.items():
        first = next(iter(systems.values()))
        table = Table(title=f"{suite} ({first['tasks']} tasks)")
        table.add_column("system")
        for _, title in COLUMNS:
            table.add_column(title, justify="right")
        for name, rates in systems.items():
            table.add_row(name, *("—" if key not in rates else f"{rates[key]:.3f}" if key != "commands_per_task"
                                  else f"{rates[key]:.1f}" for key, _ in COLUMNS))
        out.append(table)
    return out
