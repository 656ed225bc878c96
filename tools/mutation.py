"""Mutation testing, one package at a time: `python tools/mutation.py PACKAGE`.

Runs cosmic-ray over one package of infitool-edit (see PACKAGES) against only
the tests that guard it, and prints the score and every surviving mutant.
Not part of CI: it is slow (a mutant costs one pytest run).

It never mutates your checkout: it copies the tracked and untracked files
(what `git ls-files` lists) into a scratch folder and mutates there. In that
copy infitool_edit/model, kernels and themes are symlinks to the top-level
folders, and the copy goes first on PYTHONPATH, so the mutated files are the
ones imported even though the venv holds an editable install of the checkout.

Where time is short, ``--sample N`` runs a random N of the package's mutants
(seeded, so a rerun picks the same ones) and ``--budget MINUTES`` stops the
run there; the score is then over the mutants that ran, and the report says
how many were left.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

# package -> (files to mutate, test files that guard it (basenames: found
# anywhere under tests/), tests to leave out for speed (a pytest -k
# expression), per-mutant timeout in seconds)
PACKAGES: dict[str, tuple[list[str], list[str], str, int]] = {
    "commands": (
        ["infitool_edit/commands"],
        ["test_commands.py", "test_commands_fsm.py", "test_commands_peers.py", "test_commands_docs.py"],
        "not test_mutated_commands_dfa_and_parse_agree and not test_peers_stop_at_the_same_byte_on_mutated_commands",
        300,
    ),
    "document": (
        ["infitool_edit/document"],
        ["test_document_properties.py", "test_document_structure.py", "test_document_workspace.py"],
        "",
        300,
    ),
    "history": (
        ["infitool_edit/history"],
        ["test_history.py", "test_history_git.py", "test_history_index.py", "test_history_properties.py"],
        "not test_history_machine and not test_closing_lets_git_pack",
        300,
    ),
    "session": (
        ["infitool_edit/session"],
        ["test_session_draftfile.py", "test_session_editing.py"],
        "",
        300,
    ),
    "agent": (
        ["infitool_edit/agent/runner.py", "infitool_edit/agent/stream.py"],
        ["test_agent_runner.py", "test_agent_stream.py", "test_agent_ssm.py"],
        "",
        300,
    ),
    "model": (
        ["model"],
        ["test_model.py", "test_model_checkpoint.py", "test_model_mamba2.py", "test_model_text.py", "test_cpu_step.py"],
        "",
        300,
    ),
}


def test_files(names: list[str], root: Path) -> list[str]:
    """The test files by basename, wherever under tests/ they now live."""
    found = []
    for name in names:
        matches = sorted(glob.glob(f"tests/**/{name}", root_dir=root, recursive=True))
        if not matches:
            raise SystemExit(f"no test file {name} under {root}/tests")
        found += matches
    return found


def scratch_copy(into: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPOSITORY / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    for folder in ("model", "kernels", "themes"):
        (into / "infitool_edit" / folder).symlink_to(Path("..") / folder)


def write_config(path: Path, package: str, root: Path) -> None:
    modules, tests, deselect, timeout = PACKAGES[package]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *test_files(tests, root)]
    if deselect:
        command += ["-k", deselect]
    paths = ", ".join(json.dumps(module) for module in modules)
    path.write_text(
        "[cosmic-ray]\n"
        f"module-path = [{paths}]\n"
        f"timeout = {timeout}.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(' '.join(command))}\n\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )


def sample(session: Path, keep: int, seed: int) -> int:
    """Mark all but a random ``keep`` of the mutants as skipped; returns the total."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        jobs = sorted(item.job_id for item in db.work_items)
        skipped = set(jobs) - set(random.Random(seed).sample(jobs, min(keep, len(jobs))))
        db.set_multiple_results(
            sorted(skipped), WorkResult(output=None, test_outcome=None, diff=None, worker_outcome=WorkerOutcome.SKIPPED)
        )
    return len(jobs)


def report(session: Path, total: int) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"killed": 0, "survived": 0, "equivalent-annotation": 0, "incompetent": 0, "timeout-or-error": 0, "skipped": 0}
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        items = {item.job_id: item for item in db.work_items}
        for job_id, result in db.results:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.worker_outcome != WorkerOutcome.NORMAL:
                counts["timeout-or-error"] += 1  # a mutant that hangs or crashes the run counts as killed
            elif result.test_outcome == TestOutcome.KILLED:
                counts["killed"] += 1
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1
            elif _in_an_annotation(items[job_id].mutations[0], result.diff):
                counts["equivalent-annotation"] += 1
            else:
                counts["survived"] += 1
                spec = items[job_id].mutations[0]
                survivors.append(f"{spec.module_path}:{spec.start_pos[0]} {spec.operator_name} #{spec.occurrence}\n{result.diff}")
    ran = counts["killed"] + counts["survived"] + counts["timeout-or-error"]
    score = (ran - counts["survived"]) / ran if ran else float("nan")
    pending = total - sum(counts.values())
    return {"total": total, "ran": ran, "pending": pending, **counts, "score": round(score, 3), "survivors": survivors}


def _in_an_annotation(spec, diff: str | None) -> bool:
    """A surviving ``|`` mutated inside a type annotation: every module here
    has ``from __future__ import annotations``, so annotations are never
    evaluated and such a mutant cannot change behaviour (equivalent)."""
    if "BitOr" not in spec.operator_name or not diff:
        return False
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    return any(line.lstrip().startswith("def ") or ") -> " in line or line.lstrip().startswith(("self, ", "*,")) for line in removed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", choices=sorted(PACKAGES))
    parser.add_argument("--sample", type=int, default=0, help="run a random N of the mutants (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0, help="stop after this many minutes (0: no limit)")
    parser.add_argument("--keep", type=Path, help="keep the scratch folder here (default: a temporary one)")
    options = parser.parse_args()

    root = options.keep or Path(tempfile.mkdtemp(prefix=f"infitool-mutation-{options.package}-"))
    if options.keep and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    scratch_copy(root)
    config, session = root / "cosmic-ray.toml", root / "session.sqlite"
    write_config(config, options.package, root)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cosmic = [str(Path(sys.executable).parent / "cosmic-ray")]
    subprocess.run([*cosmic, "init", str(config), str(session)], cwd=root, env=env, check=True)
    total = sample(session, options.sample, options.seed) if options.sample else None
    if total is None:
        from cosmic_ray.work_db import WorkDB, use_db

        with use_db(str(session), WorkDB.Mode.open) as db:
            total = db.num_work_items
    # A session of its own, so the budget ends cosmic-ray and the pytest it is running together.
    running = subprocess.Popen([*cosmic, "exec", str(config), str(session)], cwd=root, env=env, start_new_session=True)
    try:
        running.wait(timeout=options.budget * 60 if options.budget else None)
    except subprocess.TimeoutExpired:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
        print(f"budget of {options.budget:g} min reached", file=sys.stderr)
    figures = report(session, total)
    for survivor in figures.pop("survivors"):
        print("SURVIVED", survivor)
    print(json.dumps({"package": options.package, **figures}))
    if not options.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
