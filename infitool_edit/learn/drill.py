"""Copy drills: prose-phase documents that are dense runs of the moments a stream copies a name.

A structure task asks for a name ("Add a section "Keepers Today" after "Summer"") and the model
must write it back exactly in a command, a few dozen bytes after the goal shows it. In a
command stream that copy is a few bytes among thousands; here a document is forty such
fragments in a row, each a goal (shown again by `goal`, as the expert sessions do), the command
that copies its name and the `done` that copies it once more, or an outline copied into notes.
Prose batches learn every byte, so about half of a drill's bytes teach copying. The names are
real headings of the training sources, headings' words in new orders, and letters no word has
(only a copy gets those right).

`prepare --copy-drill MB` appends the documents to the folder's prose.jsonl (their source is
"copy-drill") and writes `heldout/copy_drill.jsonl` from the held-out files' headings, on which
`train` reports `heldout_copy_bpb`: bits per byte on the copied names alone (`copy_mask`), the
figure that says whether a model copies; `train --prose-mix` sets how many phase-2 batches read
prose.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

from infitool_edit.commands import slugify
from infitool_edit.learn.goals import structure_goal
from infitool_edit.learn.plan import quote
from infitool_edit.learn.synth import heading_words, made_up_title

FRAGMENTS_PER_DOCUMENT = 40
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def drill_name(rng: random.Random, titles: list[str], words: list[str]) -> str:
    """A name to copy: a heading made up of headings' words (35%), a real heading (25%), made-up
    letters (20%), or a few heading words around a number (20%)."""
    r = rng.random()
    if r < 0.35:
        return made_up_title(rng, words)
    if r < 0.6:
        return rng.choice(titles)
    if r < 0.8:
        parts = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 8))) for _ in range(rng.randint(1, 4))]
        text = " ".join(parts)
        return text[:1].upper() + text[1:]
    picked = [rng.choice(words) for _ in range(rng.randint(1, 3))]
    picked.insert(rng.randrange(len(picked) + 1), str(rng.randint(1, 2030)))
    return " ".join(picked)


def drill_fragment(rng: random.Random, titles: list[str], words: list[str]) -> str:
    """One copying moment as the stream shows it: add or rename a section (twice as often as an
    outline into notes), or "" when a name has no slug."""
    kind = rng.choice(("add", "rename", "rename", "add", "notes"))
    new, other = drill_name(rng, titles, words), rng.choice(titles)
    if slugify(new) == "" or slugify(other) == "":
        return ""
    if kind == "add":
        goal = structure_goal("add", rng, new=new, after=other)
        lines = [f"@goal {goal}", "> goal", f"@goal {goal}",
                 f"> insert #{slugify(other)} {quote(f'## {new}' + chr(10) + chr(10))}",
                 f"@ok v{rng.randint(2, 40)} {rng.randint(3, 90)}:1",
                 "> done " + quote('Added the section "' + new + '".')]
    elif kind == "rename":
        goal = structure_goal("rename", rng, old=other, new=new)
        lines = [f"@goal {goal}", "> goal", f"@goal {goal}",
                 f"> replace {quote('## ' + other)} {quote('## ' + new)}",
                 f"@ok v{rng.randint(2, 40)} {rng.randint(3, 90)}:{len(new) + 4}",
                 '> done "Renamed the section."']
    else:
        heads = [drill_name(rng, titles, words) for _ in range(rng.randint(2, 4))]
        outline = " | ".join(f'{3 + 4 * i} "## {h}"' for i, h in enumerate(heads))
        lines = [f'@outline 1 "# {other}" | {outline}',
                 f"> notes {quote(chr(10).join([other] + ['- ' + h for h in heads]))}"]
    return "\n".join(lines) + "\n"


def copy_drill(rng: random.Random, titles: list[str], megabytes: float) -> Iterator[dict]:
    """prose.jsonl records of drill documents, ``megabytes`` of text in all; ``titles``: the
    training sources' section headings."""
    titles = sorted(set(titles))
    words = heading_words(titles)
    size = 0
    index = 0
    while size < megabytes * 1e6:
        text = "".join(drill_fragment(rng, titles, words) for _ in range(FRAGMENTS_PER_DOCUMENT))
        yield {"text": text, "source": "copy-drill", "path": f"drill/{index}", "licence": "MIT"}
        size += len(text)
        index += 1


def copy_mask(text: bytes) -> np.ndarray:
    """True on the bytes of each new name a drill's insert or replace command writes: after the
    command's last `"## ` up to its closing quote, or to the escaped newline that ends an added
    heading."""
    mask = np.zeros(len(text), dtype=bool)
    start = 0
    while start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if line.startswith((b"> insert ", b"> replace ")) and b'"## ' in line:
            first = line.rindex(b'"## ') + 4
            stop = line.find(b"\\n", first)
            stop = len(line) - 1 if stop < 0 else stop
            mask[start + first : start + stop] = True
        start = end + 1
    return mask
