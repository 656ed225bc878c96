"""How fast the document engine applies an edit to a 1 MB draft.

``apply_ms_1mb``: the median time of ``Workspace.apply`` for a few thousand
mixed insert / delete / replace commands on a generated 1 MB markdown draft
with many headings, code fences and lists, including the heading index's
update. ``search_apply_ms_1mb`` (no bound) is the same for a replace
addressed by a quoted search string, which has to read the draft up to the
first occurrence. Run it with ``python -m infitool_edit.bench.core_document``.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from infitool_edit.commands import ast
from infitool_edit.document import Workspace

DRAFT_BYTES = 1_000_000
COMMANDS = 3000
WORDS = (
    "the draft model writer sentence edit quiet river morning version history paragraph "
    "window structure method result small light careful reads again between"
).split()


def generate_draft(size: int, rng: random.Random) -> str:
    """Markdown the way a long manuscript looks: chapters, sections,
    paragraphs of wrapped prose, now and then a list or a code block."""
    parts: list[str] = ["# The Manuscript\n\n"]
    total, chapter, section = len(parts[0]), 0, 0
    while total < size:
        roll = rng.random()
        if roll < 0.03:
            chapter += 1
            block = f"## Chapter {chapter}\n\n"
        elif roll < 0.25:
            section += 1
            block = f"### Section {section}\n\n"
        elif roll < 0.28:
            block = "```\n# a comment, not a heading\nprint('x')\n```\n\n"
        elif roll < 0.31:
            block = "".join(f"- {_sentence(rng)}\n" for _ in range(3)) + "\n"
        else:
            block = "\n".join(_sentence(rng) for _ in range(rng.randint(2, 5))) + "\n\n"
        parts.append(block)
        total += len(block)
    return "".join(parts)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
    return " ".join(words).capitalize() + "."


def random_edit(workspace: Workspace, rng: random.Random) -> ast.Command:
    """A valid insert, delete or replace somewhere in the draft."""
    lines = workspace.lines
    line = rng.randrange(workspace.line_count)
    while lines[line].startswith("```"):
        # Breaking a fence turns the rest of the draft into code until it is
        # mended: a real and costly edit, but not the one a writer makes often.
        line = rng.randrange(workspace.line_count)
    width = len(lines[line])
    col = rng.randint(0, width)
    kind = rng.randrange(6)
    if kind == 0:
        return ast.Insert(ast.Point(line + 1, col + 1), rng.choice(WORDS) + " ")
    if kind == 1:
        return ast.Insert(ast.Line(line + 1), _sentence(rng) + "\n")
    if kind == 2 and width > col:
        end = rng.randint(col + 1, width)
        return ast.Delete(ast.Span(ast.Point(line + 1, col + 1), ast.Point(line + 1, end + 1)))
    if kind == 3 and lines[line].strip() and not lines[line].startswith(("#", "```")):
        return ast.Delete(ast.Line(line + 1))
    if kind == 4 and width > 0:
        old = lines[line][col : col + 4] or lines[line][:1]
        return ast.Replace(ast.Line(line + 1), rng.choice(WORDS), old)
    if lines[line].strip():
        # Rewrite a line of prose; the blank lines between paragraphs stay,
        # as they do when a writer revises.
        return ast.Replace(ast.Line(line + 1), _sentence(rng) + "\n")
    return ast.Insert(ast.Line(line + 1), "\n" + _sentence(rng) + "\n" + _sentence(rng) + "\n")


def measure(commands: int = COMMANDS, seed: int = 7) -> dict:
    rng = random.Random(seed)
    draft = generate_draft(DRAFT_BYTES, rng)
    started = time.perf_counter()
    workspace = Workspace(draft)
    print(f"loaded a {len(draft.encode()):,} byte draft, {workspace.line_count:,} lines, "
          f"{len(workspace.outline()):,} headings in {time.perf_counter() - started:.2f} s", flush=True)
    samples: list[int] = []
    for index in range(commands):
        command = random_edit(workspace, rng)
        before = time.perf_counter_ns()
        workspace.apply(command)
        samples.append(time.perf_counter_ns() - before)
        if (index + 1) % 1000 == 0:
            recent = statistics.median(samples[-1000:]) / 1e6
            print(f"{index + 1:,} commands, median of the last 1,000: {recent:.4f} ms", flush=True)
    samples.sort()
    search_samples = _measure_search_edits(workspace, rng, commands // 10)
    return {
        "apply_ms_1mb": round(statistics.median(samples) / 1e6, 4),
        "apply_ms_1mb_p90": round(samples[int(len(samples) * 0.9)] / 1e6, 4),
        "search_apply_ms_1mb": round(statistics.median(search_samples) / 1e6, 4),
    }


def _measure_search_edits(workspace: Workspace, rng: random.Random, count: int) -> list[int]:
    """``replace "old text" "new"`` right after another edit: the search
    address reads the whole draft, so this one grows with the draft's size."""
    samples: list[int] = []
    while len(samples) < count:
        workspace.apply(random_edit(workspace, rng))
        line = workspace.lines[rng.randrange(workspace.line_count)]
        if len(line) < 12 or line.startswith(("#", "```")):
            continue
        col = rng.randrange(len(line) - 8)
        needle = line[col : col + 8]
        before = time.perf_counter_ns()
        workspace.apply(ast.Replace(ast.Search(needle), needle.upper()))
        samples.append(time.perf_counter_ns() - before)
    print(f"{count:,} search-addressed replaces, median {statistics.median(samples) / 1e6:.4f} ms", flush=True)
    return samples


def main() -> dict:
    return measure()


if __name__ == "__main__":
    print(json.dumps(main()))
