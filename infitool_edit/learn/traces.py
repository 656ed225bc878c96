"""Sessions from real revision histories: ``infitool-edit traces``.

Each commit that changes a prose file gives a pair (older text, newer text)
and a message. The message's first line becomes the goal, the older text the
draft, and :func:`infitool_edit.learn.plan.edit_script` the commands a writer
would type to make the newer text, then ``done``.

Both texts are unwrapped first (a hard-wrapped paragraph becomes one line),
so a reflowed paragraph is the words that changed, not a rewrite; the
target of a trace is the unwrapped newer text. Pairs a writer would not do
by hand are skipped, each with its reason (see ``SKIPS``).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from infitool_edit.learn.plan import PlanError, edit_script, line_opcodes, normalize, writable
from infitool_edit.learn.split import held_out
from infitool_edit.learn.tasks import Task

MAX_DRAFT_CHARS = 40_000  # longer files: a session would mostly be reading
MAX_CHANGED_LINES = 30  # (unwrapped) lines changed: more is a rewrite or a sweep
MASS_CHANGE_SHARE = 0.5  # a commit touching this share of a file's lines is mechanical
CODE_SHARE = 0.5  # a file with this share of code lines is not prose
MAX_GOAL_CHARS = 200

SKIPS = (
    "new or deleted file",
    "binary",
    "control characters",
    "no message",
    "reflow only",
    "too long",
    "mostly code",
    "mass change",
    "too many changes",
    "no plan",
)


class TraceError(ValueError):
    """A repository that cannot be read (one line)."""


@dataclass(frozen=True)
class Pair:
    source: str
    path: str
    commit: str
    message: str
    old: bytes
    new: bytes


def pairs(repo: Path, globs: tuple[str, ...], *, source: str | None = None, split: str = "all") -> Iterator[Pair]:
    """Every (older, newer) pair of the files matching ``globs``, oldest
    commit first; ``split`` keeps ``train`` or ``heldout`` files only."""
    repo = Path(repo)
    source = source or repo.resolve().name
    if not (repo / ".git").exists() and not (repo / "HEAD").is_file():
        raise TraceError(f"{repo}: not a git repository")
    log = subprocess.Popen(
        ["git", "-C", str(repo), "log", "--reverse", "--raw", "--no-renames", "--no-abbrev",
         "--no-merges", "--format=%x01%H%x02%s", "HEAD"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    blobs = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )

    def blob(sha: str) -> bytes:
        blobs.stdin.write(sha.encode() + b"\n")
        blobs.stdin.flush()
        header = blobs.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            return b""
        data = blobs.stdout.read(int(header[2]))
        blobs.stdout.read(1)
        return data

    try:
        commit = message = ""
        for raw in log.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("\x01"):
                commit, _, message = line[1:].partition("\x02")
                continue
            if not line.startswith(":"):
                continue
            meta, _, path = line.partition("\t")
            fields = meta.split()
            if len(fields) < 5 or fields[4] != "M" or path.startswith('"'):
                continue  # additions, deletions, odd names
            if not any(fnmatch(path, g) for g in globs):
                continue
            if split != "all" and (split == "heldout") != held_out(source, path):
                continue
            yield Pair(source, path, commit, message, blob(fields[2]), blob(fields[3]))
    finally:
        log.stdout.close()
        log.terminate()
        blobs.stdin.close()
        blobs.terminate()
        log.wait()
        blobs.wait()


# --- unwrapping --------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_NOT_PROSE_START = re.compile(r"^(\s|#|>|\||<|-|\*|\+|=|\.\.|:|\d+[.)]\s|\[|!\[|`|\$)")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_:.])\1{2,}\s*$")
_HEADER_FIELD = re.compile(r"^[A-Z][\w-]*:( |$)")


def _joinable(line: str) -> bool:
    return bool(line.strip()) and not _NOT_PROSE_START.match(line) and not _HEADER_FIELD.match(line)


def body_indent(lines: list[str]) -> int:
    """The indentation of the body text: 4 for old plain-text PEPs, whose
    every paragraph is indented, else 0 (by characters, so an unwrapped
    text gives the same answer as the wrapped one)."""
    total = sum(len(l.strip()) for l in lines)
    four = sum(len(l.strip()) for l in lines if l.startswith("    ") and l[4:5] not in (" ", "\t"))
    return 4 if total and four / total >= 0.4 else 0


def unwrap(text: str) -> str:
    """Hard-wrapped paragraphs joined into one line each. Only plain prose
    lines join (never headings, lists, quotes, tables, code, directives,
    header fields, or a title above an underline), so unwrapping changes
    nothing a reader sees in rendered markdown or reStructuredText."""
    lines = normalize(text).split("\n")
    indent = body_indent(lines)
    out: list[str] = []
    fenced = False
    joinable_last = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            out.append(line)
            joinable_last = False
            continue
        body = line[indent:] if line.startswith(" " * indent) else " " + line
        underlined = i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1].strip())
        ok = not fenced and _joinable(body) and not underlined
        if ok and joinable_last and not out[-1].endswith(("  ", "\\", "::")):
            out[-1] = out[-1].rstrip() + " " + body.strip()
        else:
            out.append(line)
        joinable_last = ok
    return "\n".join(out)


def code_share(text: str) -> float:
    """Share of the non-blank characters that are code (fenced, or indented
    beyond the body): by characters, since an unwrapped paragraph is one line."""
    lines = text.split("\n")
    code_indent = " " * (body_indent(lines) + 4)
    fenced = False
    code = total = 0
    for line in lines:
        size = len(line.strip())
        if _FENCE.match(line):
            fenced = not fenced
            code += size
            total += size
            continue
        total += size
        if fenced or line.startswith((code_indent, "\t")):
            code += size
    return code / total if total else 0.0


def changed_lines(old: str, new: str) -> int:
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in
               line_opcodes(old.split("\n"), new.split("\n")) if tag != "equal")


def _decode(data: bytes) -> str | None:
    """UTF-8, else Latin-1 for the oldest files (early PEPs), never binary."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def trace_task(pair: Pair) -> Task | str:
    """The session for one pair, or the reason it is skipped (one of SKIPS)."""
    if not pair.old.strip() or not pair.new.strip():
        return "new or deleted file"
    old_text, new_text = _decode(pair.old), _decode(pair.new)
    if old_text is None or new_text is None:
        return "binary"
    goal = " ".join(pair.message.split())[:MAX_GOAL_CHARS].strip()
    if not goal:
        return "no message"
    # Form feeds (page breaks before an Emacs trailer in old PEPs) carry no prose.
    draft, target = unwrap(old_text.replace("\f", "")), unwrap(new_text.replace("\f", ""))
    if not writable(draft) or not writable(target):
        return "control characters"
    if draft == target:
        return "reflow only"
    if max(len(draft), len(target)) > MAX_DRAFT_CHARS:
        return "too long"
    if code_share(target) >= CODE_SHARE:
        return "mostly code"
    changed = changed_lines(draft, target)
    lines = max(1, len([l for l in draft.split("\n") if l.strip()]))
    if lines >= 10 and changed / lines >= MASS_CHANGE_SHARE:
        return "mass change"
    if changed > MAX_CHANGED_LINES:
        return "too many changes"
    try:
        script = edit_script(draft, target, summary=f"Changed {changed} line{'s' if changed != 1 else ''}.")
    except PlanError:
        return "no plan"
    return Task("traces", goal, draft, target, tuple(script), pair.source, pair.path,
                name=PurePosixPath(pair.path).name, detail=(pair.commit,))


def trace_tasks(repo: Path, globs: tuple[str, ...], *, source: str | None = None, split: str = "all",
                skipped: Counter | None = None) -> Iterator[Task]:
    for pair in pairs(repo, globs, source=source, split=split):
        result = trace_task(pair)
        if isinstance(result, str):
            if skipped is not None:
                skipped[result] += 1
        else:
            yield result


# --- the command ------------------------------------------------------------------


def _part_of(path: str, parts: int) -> int:
    import hashlib

    return int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) % parts


def _trace_part(args: tuple) -> dict:
    """Plan and render the pairs of one slice of the files (a worker's share)."""
    import json
    import time

    from infitool_edit.learn.render import Renderer
    from infitool_edit.learn.tasks import StreamMismatch, render_task

    repo, globs, source, split, part, parts, out, limit = args
    started = time.perf_counter()
    stats: Counter = Counter()
    failures = []
    with Renderer() as renderer, open(out, "w", encoding="utf-8") as sink:
        for pair in pairs(Path(repo), globs, source=source, split=split):
            if _part_of(pair.path, parts) != part:
                continue
            if limit is not None and stats["pairs"] >= limit:
                break
            stats["pairs"] += 1
            result = trace_task(pair)
            if isinstance(result, str):
                stats[f"skipped: {result}"] += 1
                continue
            try:
                record = render_task(renderer, result)
            except StreamMismatch as error:
                stats["replay failures"] += 1
                failures.append(f"{pair.commit[:10]} {error}")
                continue
            stats["streams"] += 1
            stats["commands"] += sum(1 for line in record["stream"].split("\n") if line.startswith("> "))
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    return {**dict(stats), "failures": failures[:20], "seconds": time.perf_counter() - started}


def write_traces(repo: Path, globs: tuple[str, ...], out: Path, *, split: str = "all", jobs: int = 1,
                 source: str | None = None, limit: int | None = None, progress=None) -> dict:
    """``out/streams.jsonl`` of every pair's rendered, checked session, and
    ``out/traces.json`` with the counts (pairs, skipped by reason, replay
    failures). ``limit``: at most this many pairs per worker (for a sample)."""
    import json
    import multiprocessing
    import os

    repo = Path(repo)
    source = source or repo.resolve().name
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists() and not (repo / "HEAD").is_file():
        raise TraceError(f"{repo}: not a git repository")
    work = [(str(repo), globs, source, split, part, jobs, str(out / f"part-{part}.jsonl"), limit)
            for part in range(jobs)]
    if jobs == 1:
        results = [_trace_part(work[0])]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_trace_part, work)
    total: Counter = Counter()
    failures: list[str] = []
    for result in results:
        failures += result.pop("failures")
        result.pop("seconds")
        total.update(result)
    with open(out / "streams.jsonl", "w", encoding="utf-8") as sink:
        for part in range(jobs):
            path = out / f"part-{part}.jsonl"
            sink.write(path.read_text(encoding="utf-8"))
            os.remove(path)
    summary = {"source": source, "globs": list(globs), "split": split, **dict(sorted(total.items())),
               "replay failures": total.get("replay failures", 0), "failures": failures}
    (out / "traces.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
