"""Fault injection in the spirit of SQLite's (issue 13, item 9): every file
the project writes for a draft (the draft, refs, objects, the version index,
the agent's stream, states and session.json) is truncated, garbled and
deleted after each step of a short session. Each time, the next open must
either recover without loss or refuse with one line; never an unexpected
exception, never a version text nobody wrote, never a version silently gone.
The counts are printed (run with -s to see them)."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from infitool_edit.agent.stream import StreamError, StreamLog, stream_dir_for
from infitool_edit.commands import ast
from infitool_edit.history import History, HistoryError
from infitool_edit.session.draftfile import DraftError
from infitool_edit.session.editing import EditingSession

STEPS = [
    ast.Insert(ast.End(), "A second paragraph.\n"),
    ast.Note("remember the ending"),
    ast.Replace(ast.Search("second"), "2nd"),
]
REFUSALS = (HistoryError, DraftError, StreamError)


def build(folder: Path, steps: int) -> tuple[Path, Path]:
    draft = folder / "draft.md"
    draft.write_text("# Title\n\nFirst paragraph.\n")
    with EditingSession.open(draft, author="writer") as session:
        for command in STEPS[:steps]:
            session.execute(command)
        stream_dir = stream_dir_for(session.history)
    log = StreamLog(stream_dir)
    for n in range(steps + 1):
        log.append(f"> step {n}\n@ok v{n + 1}\n", tokens=n + 1, version=n + 1, state=bytes([n]) * 32)
    log.close()
    (stream_dir / "session.json").write_text(json.dumps({"goal": "tighten", "seed": 0}))
    return draft, stream_dir


def project_files(folder: Path, draft: Path) -> list[Path]:
    """Every file we wrote: the draft and everything in its hidden history."""
    hidden = folder / f".{draft.name}.infitool"
    ours = [p for p in hidden.rglob("*") if p.is_file() and p.name not in ("lock", "config", "description")
            and "hooks" not in p.parts and "info" not in p.parts and p.name != "HEAD"]
    return [draft, *sorted(ours)]


def inject(path: Path, fault: str) -> None:
    if fault == "delete":
        path.unlink()
        return
    data = path.read_bytes()
    path.chmod(0o644)
    if fault == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # garble: flip the bytes of the middle third
        third = max(1, len(data) // 3)
        middle = bytes(b ^ 0x5A for b in data[third : 2 * third])
        path.write_bytes(data[:third] + middle + data[2 * third :])


def what_was(draft: Path, stream_dir: Path) -> tuple[list[str], bytes]:
    with History.open(draft) as history:
        texts = [history.read(n).draft for n in range(1, history.count() + 1)]
    return texts, (stream_dir / "stream.txt").read_bytes()


def reopen(draft: Path, stream_dir: Path, before: list[str], stream_before: bytes) -> str:
    """'recovered' or 'refused'; AssertionError for loss or invention."""
    on_disk = draft.read_text(errors="replace") if draft.exists() else None
    stream_file = stream_dir / "stream.txt"
    stream_at_open = stream_file.read_bytes() if stream_file.exists() else b""
    try:
        with EditingSession.open(draft, author="writer") as session:
            after = [session.history.read(n).draft for n in range(1, session.history.count() + 1)]
            session.execute(ast.Insert(ast.End(), "typed after the fault\n"))
        log = StreamLog(stream_dir)
        stream_after = (stream_dir / "stream.txt").read_bytes()
        log.close()
    except REFUSALS as error:
        assert "\n" not in str(error) and str(error), repr(error)
        return "refused"
    kept = set(after) | {on_disk}
    lost = [n + 1 for n, text in enumerate(before) if text not in kept]
    assert not lost, f"versions {lost} silently lost"
    invented = [text for text in after if text not in before and text != on_disk]
    assert not invented, f"invented versions {invented!r}"
    # Repairs only shrink: what is left is a prefix of what was there (a
    # chunk garbled in place fails its record's checksum and is cut too).
    assert stream_at_open.startswith(stream_after), "the stream was extended or rewritten"
    assert len(stream_after) <= len(stream_before)
    return "recovered"


def test_every_file_truncated_garbled_and_deleted_at_each_step(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="infitool_edit")
    outcomes: Counter[str] = Counter()
    failures = []
    for steps in (1, len(STEPS)):
        pristine = tmp_path / f"pristine-{steps}"
        pristine.mkdir()
        draft, stream_dir = build(pristine, steps)
        before, stream_before = what_was(draft, stream_dir)
        for index, path in enumerate(project_files(pristine, draft)):
            for fault in ("truncate", "garble", "delete"):
                case = tmp_path / f"case-{steps}-{index}-{fault}"
                shutil.copytree(pristine, case, symlinks=True)
                target = case / path.relative_to(pristine)
                inject(target, fault)
                name = f"step {steps}: {fault} {path.relative_to(pristine)}"
                try:
                    outcomes[reopen(case / draft.name, case / stream_dir.relative_to(pristine),
                                    before, stream_before)] += 1
                except Exception as error:  # noqa: BLE001 - every other outcome is a finding
                    outcomes["failed"] += 1
                    failures.append(f"{name}: {type(error).__name__}: {error}")
                shutil.rmtree(case)
    total = sum(outcomes.values())
    print(f"\nfault injection: {total} faults, {outcomes['recovered']} recovered, "
          f"{outcomes['refused']} refused in one line, {outcomes['failed']} failed")
    assert total > 60
    assert not failures, "\n".join(failures)
