"""Synthetic tasks from clean prose, each with a checker.

- typos: real misspellings (codespell's dictionary, reversed) and keyboard
  slips (swapped, dropped, doubled, neighbouring keys); some drafts have none.
- mechanics: doubled words and spaces, a missing capital after a full stop,
  a space before punctuation, a missing full stop.
- structure: add, rename or move a section; the outline into notes; split a
  long paragraph.
- process: a short document written from an empty or partial draft, the way
  the editor wants work to go: headings, a plan, first sentences, the rest,
  revisions on the way.
- clean: nothing to do; the expert reads it through and says done.
- asks: a request for new prose ("Write a paragraph about ..."), which the
  model cannot serve; the expert declines at once (``done`` with
  ``DECLINE_SUMMARY``), the draft and the notes untouched.

Drafts are short (a few paragraphs) so a stream is mostly decisions. The
expert reads a small window, acts on it, and moves on: what a recurrent model
remembers well is the last few hundred bytes.

Everything is a function of a ``random.Random``: the same seed, the same tasks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from infitool_edit.commands import parse, slugify
from infitool_edit.document import Workspace
from infitool_edit.document.proofread import NEIGHBOURS, codespell_pairs, doubled_words, match_case
from infitool_edit.learn.goals import PROOFREADING_KINDS, ask_goal, proofreading_goal, structure_goal
from infitool_edit.learn.plan import PlanError, edit_script, normalize, proofreading_script, quote, writable
from infitool_edit.learn.tasks import Task
from infitool_edit.learn.traces import unwrap

FIXED_SUMMARY = {"typos": "Fixed the typos.", "mechanics": "Fixed the punctuation and spacing."}
# What the model says when it leaves a goal to the writer: what it does instead. Every summary
# that leaves a goal to the writer begins with LEFT_FOR_THE_WRITER (the editor's goal hold too:
# agent/held_back.py), and that is what the asks suite looks for.
LEFT_FOR_THE_WRITER = "Left for the writer:"
DECLINE_SUMMARY = f"{LEFT_FOR_THE_WRITER} I proofread and edit sections."

MIN_PARAGRAPH, MAX_PARAGRAPH = 80, 380  # a read shows a line of up to 400 characters whole
MAX_SNIPPET = 1500

# --- clean prose -----------------------------------------------------------------

_PROSE = re.compile(r"^[A-Z\"'(][^\n]*[.!?:\"')]$")
_ATX = re.compile(r"^(#{1,6}) +(.+?)\s*#*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


_MARKUP = re.compile(r"[`*_\[\]<>{}|\\$=]")
_NOT_LETTER = re.compile(r"[^A-Za-z ]")


def prose_paragraph(line: str) -> bool:
    """A paragraph a proofreader could be handed: plain sentences, little markup,
    and no slip of its own (a doubled space or word left in the source would
    make a "clean" draft's gold keep a mistake the model is right to fix)."""
    if not (MIN_PARAGRAPH <= len(line) <= MAX_PARAGRAPH) or not _PROSE.match(line):
        return False
    marks = len(_MARKUP.findall(line))
    letters = len(line) - len(_NOT_LETTER.findall(line))
    return marks <= len(line) / 50 and letters >= 0.85 * len(line) and "  " not in line \
        and not any(doubled_words(line))


@dataclass(frozen=True)
class Source:
    """A document cut into what the tasks need."""

    source: str
    path: str
    paragraphs: tuple[tuple[str, ...], ...]  # runs of consecutive prose paragraphs
    sections: tuple[tuple[str, str], ...]  # (title, its first prose paragraph)


def cut(source: str, path: str, text: str) -> Source:
    lines = unwrap(text).split("\n")
    runs: list[list[str]] = [[]]
    sections: list[tuple[str, str]] = []
    title = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        heading = _ATX.match(line)
        underlined = i + 1 < len(lines) and _RST_UNDERLINE.match(lines[i + 1]) and stripped
        if heading or underlined:
            title = heading.group(2) if heading else stripped
            title = title if _good_title(title) else None
            runs.append([])
            continue
        if not stripped or _RST_UNDERLINE.match(line):
            continue
        if line == stripped and prose_paragraph(line):
            runs[-1].append(line)
            if title is not None:
                sections.append((title, line))
                title = None
        else:
            runs.append([])
            title = None
    return Source(source, path, tuple(tuple(r) for r in runs if r), tuple(sections))


_TITLE = re.compile(r"[A-Z][A-Za-z0-9 ,'()&?:-]*")


def _good_title(title: str) -> bool:
    """A heading a writer would type: words, a little punctuation, no markup."""
    return 2 <= len(title) <= 60 and bool(_TITLE.fullmatch(title)) and bool(slugify(title))


def sources(documents: Iterable) -> list[Source]:
    """Documents (``corpus.Document``) cut; those with no usable prose dropped."""
    out = []
    for document in documents:
        cut_up = cut(document.source, document.path, document.text)
        if cut_up.paragraphs:
            out.append(cut_up)
    return out


def snippet(rng: random.Random, source: Source, *, heading: bool | None = None) -> str:
    """A few consecutive paragraphs (sometimes under a heading), normalized."""
    run = rng.choice(source.paragraphs)
    start = rng.randrange(len(run))
    chosen: list[str] = []
    for paragraph in run[start : start + rng.randint(1, 4)]:
        if chosen and sum(map(len, chosen)) + len(paragraph) > MAX_SNIPPET:
            break
        chosen.append(paragraph)
    heading = rng.random() < 0.4 if heading is None else heading
    titles = [t for t, _ in source.sections]
    top = [f"## {rng.choice(titles)}"] if heading and titles else []
    return normalize("\n\n".join(top + chosen))


# --- typos -----------------------------------------------------------------------

def slip(rng: random.Random, word: str) -> str:
    """A keyboard slip inside a word (never its first letter)."""
    for _ in range(10):
        kind = rng.choice(("swap", "drop", "double", "neighbour"))
        i = rng.randrange(1, len(word) - 1) if len(word) > 2 else 1
        if kind == "swap" and i + 1 < len(word) and word[i] != word[i + 1]:
            out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "drop":
            out = word[:i] + word[i + 1 :]
        elif kind == "double":
            out = word[:i] + word[i] + word[i:]
        elif kind == "neighbour" and word[i].lower() in NEIGHBOURS:
            out = word[:i] + rng.choice(NEIGHBOURS[word[i].lower()]) + word[i + 1 :]
        else:
            continue
        if out != word:
            return out
    return word


_WORD = re.compile(r"[A-Za-z]+")


def _words_outside_code(text: str) -> list[re.Match]:
    spans = [(m.start(), m.end()) for m in re.finditer(r"`[^`]*`|^#.*$", text, re.M)]
    return [m for m in _WORD.finditer(text) if not any(a <= m.start() < b for a, b in spans)]


def add_typos(rng: random.Random, text: str, count: int) -> str:
    wrong_for, _ = codespell_pairs()
    words = [m for m in _words_outside_code(text) if len(m.group()) >= 4]
    rng.shuffle(words)
    chosen = sorted(words[:count], key=lambda m: m.start(), reverse=True)
    for m in chosen:
        word = m.group()
        real = wrong_for.get(word.lower())
        if real and rng.random() < 0.5:
            typo = match_case(word, rng.choice(real))
        else:
            typo = slip(rng, word)
        text = text[: m.start()] + typo + text[m.end() :]
    return text


# --- mechanics ----------------------------------------------------------------------

SHORT_WORDS = ("the", "a", "to", "of", "and", "in", "is", "that", "it", "for")


def add_mechanics(rng: random.Random, text: str, count: int) -> str:
    for _ in range(count):
        fault = rng.choice(("doubled word", "doubled space", "capital", "space before", "full stop"))
        text = _FAULTS[fault](rng, text)
    return text


def _doubled_word(rng, text):
    hits = [m for m in re.finditer(r"(?<= )(%s)(?= )" % "|".join(SHORT_WORDS), text)] or \
        [m for m in re.finditer(r"(?<= )[a-z]{2,}(?= )", text)]
    if not hits:
        return text
    m = rng.choice(hits)
    return text[: m.end()] + " " + m.group() + text[m.end() :]


def _doubled_space(rng, text):
    hits = [m.start() for m in re.finditer(r"(?<=[a-z,]) (?=[a-z])", text)]
    if not hits:
        return text
    at = rng.choice(hits)
    return text[:at] + " " + text[at:]


def _capital(rng, text):
    hits = [m for m in re.finditer(r"(?<=[a-z]\. )([A-HJ-Z])(?=[a-z])", text)]
    if not hits:
        return text
    m = rng.choice(hits)
    return text[: m.start()] + m.group().lower() + text[m.end() :]


def _space_before(rng, text):
    hits = [m.start() for m in re.finditer(r"(?<=[a-z])[,.;:?!](?= [a-zA-Z]|\n|$)", text)]
    if not hits:
        return text
    at = rng.choice(hits)
    return text[:at] + " " + text[at:]


def _full_stop(rng, text):
    hits = [m.start() for m in re.finditer(r"(?<=[a-z])\.(?=\n)", text)]
    if not hits:
        return text
    at = rng.choice(hits)
    return text[:at] + text[at + 1 :]


_FAULTS = {"doubled word": _doubled_word, "doubled space": _doubled_space, "capital": _capital,
           "space before": _space_before, "full stop": _full_stop}


# --- the tasks ------------------------------------------------------------------------


# How often a proofreading draft is a whole short document (a title and
# sections) rather than a few paragraphs: a proofreader checks whatever the
# draft's shape, and a writer's draft has headings.
DOCUMENT_SHARE = 0.3


def proofreading_task(kind: str, rng: random.Random, source: Source, pool: list[Source] = (), *,
                      heldout: bool = False) -> Task | None:
    clean = None
    if pool and rng.random() < DOCUMENT_SHARE:
        document = structured_document(rng, pool, rng.randint(2, 4))
        if document is not None:
            clean = render_document(*document)
    if clean is None:
        clean = snippet(rng, source)
    if kind == "typos":
        count = 0 if rng.random() < 0.1 else rng.randint(1, max(1, min(4, len(clean) // 250 + 1)))
        draft = add_typos(rng, clean, count)
    elif kind == "mechanics":
        draft = add_mechanics(rng, clean, rng.randint(1, 3))
    else:
        draft = clean
    goal = proofreading_goal(kind, rng, heldout=heldout)
    # No count in the summary: a small model miscounts, and a summary that says
    # "Fixed 2 lines." after fixing one tells the writer something false.
    summary = "Nothing to fix." if draft == clean else FIXED_SUMMARY[kind]
    try:
        script = proofreading_script(draft, clean, summary=summary)
    except PlanError:
        return None
    return Task(kind, goal, draft, clean, tuple(script), source.source, source.path)


def structured_document(rng: random.Random, pool: list[Source], sections: int) -> tuple[str, list[tuple[str, str]]] | None:
    """``# Title`` and ``sections`` ``## Heading`` sections of one paragraph each,
    taken from documents with headings (titles distinct by slug)."""
    rich = [s for s in pool if len(s.sections) >= 2]
    if not rich:
        return None
    chosen: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(sections * 4):
        source = rng.choice(rich)
        title, paragraph = rng.choice(source.sections)
        if slugify(title) in seen:
            continue
        seen.add(slugify(title))
        chosen.append((title, paragraph))
        if len(chosen) == sections:
            break
    if len(chosen) < sections:
        return None
    top = rng.choice(rich).sections[0][0]
    if slugify(top) in seen:
        return None
    return top, chosen


def render_document(title: str, sections: list[tuple[str, str]]) -> str:
    parts = [f"# {title}"]
    for heading, body in sections:
        parts.append(f"## {heading}")
        if body:
            parts.append(body)
    return normalize("\n\n".join(parts))


class _Builder:
    """Commands played on the document engine as they are chosen, so every
    address is computed against the text as it stands."""

    def __init__(self, draft: str) -> None:
        self.workspace = Workspace(draft)
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        verb = line.split(" ", 1)[0]
        if verb not in ("done", "goal", "history"):
            self.workspace.apply(parse(line))
        self.lines.append(line)

    def line_of(self, text: str, after: int = 0) -> int:
        """1-based number of the first line equal to ``text`` (after line ``after``)."""
        for number, line in enumerate(self.workspace.text.split("\n"), 1):
            if number > after and line == text:
                return number
        raise PlanError(f"no line {text!r}")

    @property
    def line_count(self) -> int:
        return len(self.workspace.text.split("\n")) - 1


def heading_words(titles: list[str]) -> list[str]:
    """The plain words of these headings (letters, apostrophes, hyphens), sorted, each once: what
    `made_up_title` draws from."""
    return sorted({w for t in titles for w in t.split() if re.fullmatch(r"[A-Za-z][A-Za-z'-]*", w)})


def made_up_title(rng: random.Random, title_words: list[str]) -> str:
    """Words of real headings in an order no heading has: a name the model can
    only get right by copying it out of the goal, never by guessing how a real
    heading goes on (a small model that half-copies drifts into a likely
    heading: "Scala" became "Scalability")."""
    picked = [rng.choice(title_words) for _ in range(rng.randint(1, 7))]
    return picked[0][:1].upper() + " ".join(picked)[1:]


def structure_task(rng: random.Random, pool: list[Source], extra_titles: list[str], *,
                   heldout: bool = False, title_words: list[str] = ()) -> Task | None:
    """A structural edit of a short document. The expert looks (``outline``),
    re-reads what it was asked (``goal``: the goal was shown before the whole
    draft, too far back for a small recurrent model to copy a name from), then
    acts in one command whose strings are copied from those two answers just
    above: a heading's own words (``replace "## Old" "## New"``), its slug
    (``insert #old ...``, ``move #this #that``), or a search string the mask
    holds to the draft."""
    made = structured_document(rng, pool, rng.randint(3, 4))
    if made is None:
        return None
    title, secs = made
    draft = render_document(title, secs)
    kind = rng.choice(("add", "rename", "move", "notes", "split"))
    b = _Builder(draft)
    b("outline")
    b("goal")
    names = [h for h, _ in secs]

    def new_name() -> str:
        # Half the new names in training are made up, to teach copying;
        # held-out tasks ask only for real headings, the case a writer brings.
        if title_words and not heldout and rng.random() < 0.5:
            return made_up_title(rng, title_words)
        return rng.choice(extra_titles)

    if kind == "add":
        new = new_name()
        if slugify(new) in {slugify(n) for n in names} | {slugify(title)}:
            return None
        after = rng.randrange(len(secs))
        goal = structure_goal("add", rng, heldout=heldout, new=new, after=names[after])
        # A heading's point is the end of its section: the start of the next
        # heading's line, or the end of the draft after the last section.
        if after + 1 < len(secs):
            b(f"insert #{slugify(names[after])} {quote(f'## {new}' + chr(10) + chr(10))}")
        else:
            b(f"insert #{slugify(names[after])} {quote(chr(10) + f'## {new}' + chr(10))}")
        target = render_document(title, secs[: after + 1] + [(new, "")] + secs[after + 1 :])
        check, detail, summary = "sections", (), f'Added the section "{new}".'
    elif kind == "rename":
        new = new_name()
        if slugify(new) in {slugify(n) for n in names} | {slugify(title)}:
            return None
        which = rng.randrange(len(secs))
        goal = structure_goal("rename", rng, heldout=heldout, old=names[which], new=new)
        b(f"replace {quote('## ' + names[which])} {quote('## ' + new)}")
        target = render_document(title, secs[:which] + [(new, secs[which][1])] + secs[which + 1 :])
        check, detail, summary = "exact", (), "Renamed the section."
    elif kind == "move":
        which = rng.randrange(len(secs))
        # After another section (not the one just above: nothing would move), or to the end.
        after = rng.choice([i for i in range(len(secs)) if i not in (which, which - 1)] + [None])
        if after is None and which == len(secs) - 1:
            return None
        if after is None:
            goal = structure_goal("move to end", rng, heldout=heldout, which=names[which])
        else:
            goal = structure_goal("move", rng, heldout=heldout, which=names[which], after=names[after])
        b(f"move #{slugify(names[which])} {'#' + slugify(names[after]) if after is not None else '$'}")
        order = [s for i, s in enumerate(secs) if i != which]
        order.insert(len(order) if after is None else order.index(secs[after]) + 1, secs[which])
        target = render_document(title, order)
        check, detail, summary = "exact", (), "Moved the section."
    elif kind == "notes":
        goal = structure_goal("notes", rng, heldout=heldout)
        listing = "\n".join([title] + [f"- {n}" for n in names])
        b(f"notes {quote(listing)}")
        target = draft
        check, detail, summary = "notes-outline", (title, *names), "The outline is in the notes."
    else:
        long = [(i, body) for i, (_, body) in enumerate(secs) if len(_sentences(body)) >= 3 and len(body) >= 250]
        if not long:
            return None
        which, body = rng.choice(long)
        sentences = _sentences(body)
        cut_at = min(range(1, len(sentences)), key=lambda k: abs(len(" ".join(sentences[:k])) - len(body) / 2))
        first, second = " ".join(sentences[:cut_at]), " ".join(sentences[cut_at:])
        if f"{first} {second}" != body:
            return None
        opening = " ".join(body.split()[:4])
        goal = structure_goal("split", rng, heldout=heldout, opening=opening)
        # Read the paragraph again just above the cut, then cut it with a
        # search string (the mask holds it to the draft): the fewest words
        # around the sentence end whose first occurrence is this one.
        if draft.find(opening) != draft.index(body):
            return None
        b(f"read {quote(opening)}")
        at = draft.index(body) + len(first)
        left_words, right = first.split(), second.split()[0]
        for n in range(2, min(6, len(left_words)) + 1):
            old = " ".join(left_words[-n:]) + " " + right
            if draft.find(old) == at - len(" ".join(left_words[-n:])):
                break
        else:
            return None
        new_text = old.replace(" " + right, "\n\n" + right)
        b(f"replace {quote(old)} {quote(new_text)}")
        target = b.workspace.text
        check, detail, summary = "split", (body,), "Split the paragraph in two."
    b(f"done {quote(summary)}")
    task = Task("structure", goal, draft, target, tuple(b.lines), "synthetic", f"structure/{kind}",
                check=check, detail=detail)
    from infitool_edit.learn.tasks import check as passes

    return task if passes(task, b.workspace.text, b.workspace.notes) else None


def asks_task(rng: random.Random, pool: list[Source], *, heldout: bool = False) -> Task | None:
    """A request for new prose on a short document of the same make as the structure tasks', so
    that what decides between declining and acting is the goal, not the draft."""
    made = structured_document(rng, pool, rng.randint(2, 4))
    if made is None:
        return None
    title, secs = made
    draft = render_document(title, secs)
    goal = ask_goal(rng, heldout=heldout, section=rng.choice(secs)[0])
    return Task("decline", goal, draft, draft, (f"done {quote(DECLINE_SUMMARY)}",), "synthetic", "asks",
                check="declined", detail=(LEFT_FOR_THE_WRITER,))


def _sentences(paragraph: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", paragraph)


def process_task(rng: random.Random, pool: list[Source]) -> Task | None:
    """Writing a short document the way the editor shows work: the skeleton of
    headings, a plan in the notes, each section's first sentence, then the
    rest of each paragraph, with a revision or two on the way."""
    made = structured_document(rng, pool, rng.randint(2, 3))
    if made is None:
        return None
    title, secs = made
    secs = [(h, " ".join(_sentences(body)[:3])) for h, body in secs]
    target = render_document(title, secs)
    start = rng.choice(("empty", "title", "headings"))
    names = [h for h, _ in secs]
    draft = {"empty": "", "title": normalize(f"# {title}"), "headings": render_document(title, [(n, "") for n in names])}[start]
    goal = f'Write "{title}": ' + ", ".join(names) + "."
    b = _Builder(draft)
    if draft:
        b("outline")
    if start == "empty":
        b(f"insert $ {quote(render_document(title, [(n, '') for n in names]))}")
    elif start == "title":
        b(f"insert $ {quote(chr(10) + ''.join(f'## {n}' + chr(10) + chr(10) for n in names).rstrip(chr(10)) + chr(10))}")
    plan = "plan: " + "; ".join(f"{n}: {' '.join(body.split()[:5])}…" for n, body in secs)
    b(f"note {quote(plan)}")
    slipped: tuple[int, str, str] | None = None  # (section, as written, as meant)
    for i, (name, body) in enumerate(secs):  # first sentences, section by section
        first = _sentences(body)[0]
        written = first
        if slipped is None and rng.random() < 0.5:
            words = [w for w in _WORD.findall(first) if len(w) >= 5]
            if words:
                word = rng.choice(words)
                wrong = slip(rng, word)
                if wrong != word and first.count(word) == 1 and wrong not in b.workspace.text:
                    written = first.replace(word, wrong)
                    slipped = (i, wrong, word)
        if i + 1 < len(secs):
            at = b.line_of("## " + secs[i + 1][0])
            b(f"insert {at} {quote(written + chr(10) + chr(10))}")
        else:
            b(f"insert $ {quote(chr(10) + written + chr(10))}")
    for i, (name, body) in enumerate(secs):  # then the rest, re-reading each paragraph first
        sentences = _sentences(body)
        first = sentences[0]
        here = slipped is not None and slipped[0] == i
        shown = first.replace(slipped[2], slipped[1]) if here else first
        number = b.line_of(shown)
        b(f"read {number}")
        if here:
            b(f"replace {number} {quote(slipped[1])} {quote(slipped[2])}")
        if len(sentences) > 1:
            rest = " " + " ".join(sentences[1:])
            anchor = _short_anchor(b.workspace.text, first)
            b(f"insert {quote(anchor)} {quote(rest)}" if anchor else f"insert {number}:{len(first) + 1} {quote(rest)}")
    b(f"read 1-{b.line_count}")
    b(f"done {quote('Wrote ' + title + '.')}")
    if b.workspace.text != target:
        return None
    return Task("process", goal, draft, target, tuple(b.lines), "synthetic", "process")


def _short_anchor(text: str, line: str) -> str | None:
    """The shortest ending of ``line`` (three words at least) whose first
    occurrence in ``text`` ends where ``line`` does, or None."""
    end = text.find(line + "\n")
    if end < 0:
        return None
    end += len(line)
    words = line.split(" ")
    for n in range(3, len(words) + 1):
        anchor = " ".join(words[-n:])
        if text.find(anchor) + len(anchor) == end:
            return anchor
    return None


def _or_none(make, *args, **kwargs) -> Task | None:
    """A task, or None where the drawn material does not fit it (a plan
    address that does not resolve, a heading the engine reads differently)."""
    try:
        return make(*args, **kwargs)
    except ValueError:  # PlanError, ApplyError, CommandError
        return None


def synthetic_tasks(rng: random.Random, pool: list[Source], counts: dict[str, int], *,
                    heldout: bool = False) -> Iterator[Task]:
    """``counts[kind]`` tasks of each kind (fewer only if the pool is too thin), their
    goals worded in the held-out phrasings when ``heldout`` (``goals``)."""
    titles = sorted({t for s in pool for t, _ in s.sections})
    title_words = heading_words(titles)
    prose = [s for s in pool if s.paragraphs]
    for kind, wanted in counts.items():
        made = tries = 0
        while made < wanted and tries < wanted * 5 + 20:
            tries += 1
            if kind in PROOFREADING_KINDS:
                task = proofreading_task(kind, rng, rng.choice(prose), pool, heldout=heldout)
            elif kind == "structure":
                task = (_or_none(structure_task, rng, pool, titles, heldout=heldout, title_words=title_words)
                        if titles else None)
            elif kind == "process":
                task = _or_none(process_task, rng, pool)
            elif kind == "asks":
                task = asks_task(rng, pool, heldout=heldout)
            else:
                raise ValueError(f"unknown task kind {kind!r}")
            if task is None or (kind not in ("clean", "typos", "structure", "asks") and task.draft == task.target):
                continue
            made += 1
            yield task
