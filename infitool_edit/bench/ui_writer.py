"""`bench ui`'s figures for issue 11 (the editor a writer expects):

- ``preview_ms_2mb`` (≤ 50): one step of the timeline's preview (the
  version read, its parent read, the word diff, the editor loaded and
  painted) on a 2 MB draft whose history holds 10,000 versions; median of
  20 previews of versions spread over the history. The versions are made
  with ``git fast-import``: ten distinct 2 MB drafts shared round-robin by
  10,000 commits, so the run stays short while every preview reads and
  diffs two real 2 MB blobs.
- ``writer_versions_per_min``: the versions one minute of a writer's typing
  makes: 300 words (a fast typist) of prose in sentences of ~15 words,
  typed key by key into the editor with no pause long enough for the idle
  timer. Per word it was ~one version a word.
- ``first_paint_ms`` (≤ 500): ``infitool-edit DRAFT`` started in a
  pseudo-terminal, until the editor screen with the draft's text has been
  written to the terminal (the draft's sentence and the title bar both
  seen); median of 5 launches, with Python's bytecode cache on as in a
  writer's shell (``_launch_environment``). Nothing before it imports torch, numpy,
  tree-sitter, git or the session: they load in a thread after that frame
  (``ui/app.py``). ``python_textual_ms`` (no bound) is the floor on the
  same machine in the same run: a bare Python that imports ``textual.app``
  and exits, run alternately with the launches, so that
  ``first_paint_vs_textual`` (their medians' ratio) reads the same on a
  loaded machine as on a quiet one. ``session_ready_ms`` (no bound): until
  the session is open and the editor takes edits (the status bar's
  "saved automatically"). ``splash_ms`` (≤ 200): until the "opening…"
  line ``launch.py`` writes before the heavy imports.
  ``first_paint_cpu_ms`` and ``python_textual_cpu_ms`` (no bound): the
  processor time the editor had used when its frame was seen (from
  ``/proc``, in 10 ms ticks) and the bare Python's: what a busy machine
  does not stretch, so near what the two take on a quiet one.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from textual import events

from infitool_edit.bench.core_document import generate_draft
from infitool_edit.history import History
from infitool_edit.ui.app import make_app

PREVIEW_VERSIONS = 10_000
DISTINCT_DRAFTS = 10
DRAFT_SENTENCE = "A short draft to open."
SENTENCE = "The river turns slowly past the mill where the old wheel still creaks in spring. "


def _import_versions(git_dir: Path, branch_ref: str, parent: str, drafts: list[str], count: int,
                     name: str) -> None:
    importer = subprocess.Popen(["git", "--git-dir", str(git_dir), "fast-import", "--quiet"],
                                stdin=subprocess.PIPE)
    when = f"{int(time.time())} +0000"
    write = importer.stdin.write
    for index, draft in enumerate(drafts):  # each distinct draft once, as a mark
        data = draft.encode("utf-8")
        write(f"blob\nmark :{index + 1}\ndata {len(data)}\n".encode() + data + b"\n")
    for number in range(2, count + 1):
        message = f'insert 1:1 "v{number} "\n\nInfitool-Version: {number}\nInfitool-Line: main\n'
        write((f"commit {branch_ref}\n"
               f"author model:bench <model-bench@infitool-edit.invalid> {when}\n"
               f"committer infitool-edit <infitool-edit@infitool-edit.invalid> {when}\n"
               f"data {len(message.encode())}\n{message}"
               + (f"from {parent}\n" if number == 2 else "")
               + f"M 100644 :{number % len(drafts) + 1} {name}.md\n"
               + f"M 100644 inline {name}.notes.md\ndata 0\n\n").encode())
    importer.stdin.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")


async def preview_ms_2mb(folder: Path, paint_now) -> dict:
    import random

    rng = random.Random(11)
    base = generate_draft(2_000_000, rng)
    lines = base.split("\n")
    drafts = []
    for n in range(DISTINCT_DRAFTS):  # each differs from the next in a few lines
        changed = list(lines)
        for _ in range(3):
            at = rng.randrange(len(changed))
            changed[at] = f"Revised {n}: " + changed[at]
        drafts.append("\n".join(changed))
    draft = folder / "preview" / "book.md"
    draft.parent.mkdir()
    with History.open(draft) as history:
        first = history.record(drafts[1], "", "open", "disk")
        git_dir, branch_ref = history.git_dir, history.branch_ref("main")
    started = time.perf_counter()
    _import_versions(git_dir, branch_ref, first.commit, drafts, PREVIEW_VERSIONS, draft.stem)
    print(f"ui: {PREVIEW_VERSIONS:,} versions of a 2 MB draft made in {time.perf_counter() - started:.1f} s",
          flush=True)
    draft.write_text(drafts[PREVIEW_VERSIONS % DISTINCT_DRAFTS], encoding="utf-8")
    app = make_app(draft)
    times = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.history.count() == PREVIEW_VERSIONS
        app.action_toggle_timeline()
        await pilot.pause()
        for number in range(PREVIEW_VERSIONS - 5, 1, -PREVIEW_VERSIONS // 20):
            started = time.perf_counter()
            app.version_preview.show(number)
            paint_now(app)
            times.append((time.perf_counter() - started) * 1000)
        app.action_leave_preview()
    return {"preview_ms_2mb": round(statistics.median(times), 3)}


async def writer_versions_per_min(folder: Path) -> dict:
    draft = folder / "typing" / "essay.md"
    draft.parent.mkdir()
    draft.write_text("# Essay\n\n", encoding="utf-8")
    words_per_min = 300
    text = ""
    while len(text.split()) < words_per_min:
        text += SENTENCE
    text = " ".join(text.split()[:words_per_min]) + " "
    app = make_app(draft)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        before = app.history.count()
        editor = app.editor
        editor.set_writer_cursor(editor.buffer.end())
        for character in text:
            key = "space" if character == " " else ("full_stop" if character == "." else character)
            editor.writer_key(events.Key(key, character))
        app.writer_pen.flush()
        made = app.history.count() - before
        assert app.session.workspace.text.endswith(text.rstrip(" ") + " ") or app.session.workspace.text.endswith(text)
    print(f"ui: {words_per_min} words typed made {made} versions", flush=True)
    return {"writer_versions_per_min": made}


def _cpu_ms(pid: int) -> float:
    """The processor time a running process has used (user + system), in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _launch_environment(folder: Path) -> dict[str, str]:
    """The environment a writer's shell gives: Python's bytecode cache on
    (a sandbox may turn it off with PYTHONDONTWRITEBYTECODE, and then every
    launch compiles the editor's modules again), kept in a folder of the
    bench's own so the checkout is not written to."""
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30",
               PYTHONPYCACHEPREFIX=str(folder / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _launch_until_painted(draft: Path, env: dict[str, str],
                          timeout: float = 120.0) -> tuple[float, float, float, float]:
    """Milliseconds until the "opening…" line, until the title bar and the
    draft are painted, and until the session is open (the status bar says
    so); and the processor time the editor had used when it had painted."""
    beside = Path(sys.executable).with_name("infitool-edit")  # this checkout's, before any other on the PATH
    program = str(beside) if beside.exists() else shutil.which("infitool-edit")
    master, slave = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen([program, str(draft)], stdin=slave, stdout=slave, stderr=slave, env=env,
                               start_new_session=True)
    os.close(slave)
    seen = b""
    splash = painted = painted_cpu = None
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                now = (time.perf_counter() - started) * 1000
                if splash is None and b"opening" in seen:
                    splash = now
                # The draft's own sentence, and the title bar ("· 5 words · model: …"): the real screen.
                if painted is None and DRAFT_SENTENCE.encode() in seen and b"words \xc2\xb7 model" in seen:
                    painted, painted_cpu = now, _cpu_ms(process.pid)
                if painted is not None and b"saved automatically" in seen:
                    return (splash if splash is not None else painted), painted, now, painted_cpu
        raise RuntimeError("the editor never painted its first screen" if painted is None
                           else "the editor painted but its session never opened")
    finally:
        os.write(master, b"\x11")  # ctrl+q
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        os.close(master)


def _python_importing_textual_ms(env: dict[str, str]) -> tuple[float, float]:
    """A bare Python importing ``textual.app``: wall and processor milliseconds."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import textual.app"], check=True, env=env)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000


def first_paint_ms(folder: Path, launches: int = 5) -> dict:
    folder = folder / "launch"
    folder.mkdir()
    env = _launch_environment(folder)
    # The bytecode cache filled, as after a writer's first launch (the session's modules fill it then).
    subprocess.run([sys.executable, "-c", "import infitool_edit.launch, infitool_edit.ui.app, textual.app"],
                   check=True, env=env)
    splashes, paints, readies, paint_cpus, floors, floor_cpus = [], [], [], [], [], []
    for n in range(launches):  # alternately, so that the load falls on both alike
        floor, floor_cpu = _python_importing_textual_ms(env)
        floors.append(floor)
        floor_cpus.append(floor_cpu)
        draft = folder / f"draft{n}.md"
        draft.write_text(f"# Launch\n\n{DRAFT_SENTENCE}\n", encoding="utf-8")
        splash, paint, ready, paint_cpu = _launch_until_painted(draft, env)
        paint_cpus.append(paint_cpu)
        splashes.append(splash)
        paints.append(paint)
        readies.append(ready)
    paint, floor = statistics.median(paints), statistics.median(floors)
    print(f"ui: first paint {paints} ms, python importing textual.app {floors} ms", flush=True)
    return {"first_paint_ms": round(paint, 1),
            "python_textual_ms": round(floor, 1),
            "first_paint_vs_textual": round(paint / floor, 3),
            "session_ready_ms": round(statistics.median(readies), 1),
            # Processor time, which a busy machine does not stretch: the editor's up to its
            # first frame, and the bare Python's (what the two would take on a quiet machine).
            "first_paint_cpu_ms": round(statistics.median(paint_cpus), 1),
            "python_textual_cpu_ms": round(statistics.median(floor_cpus), 1),
            "splash_ms": round(statistics.median(splashes), 1)}
