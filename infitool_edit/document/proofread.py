"""What a careful proofreader flags without knowing what the writer meant:
the findings of the ``check`` command.

- a misspelt word with one likely fix: a real misspelling codespell knows
  (``recieve`` → ``receive``), or a word no word list knows one keyboard slip
  away from one it does (``obbject`` → ``object``: a letter swapped, dropped,
  doubled or struck beside the right key);
- a doubled word (``the the``), two spaces between words (not three or
  more, which align a table or code, and not two after a sentence when the
  lines looked at end their sentences so: a typist's convention, not a slip);
- a small letter after a full stop (``ended. the`` → ``ended. The``);
- a space before punctuation (``word ,``);
- a paragraph whose last sentence has no full stop (not a line that leads
  into a list or an indented block, or a caption between HTML tags).

A finding is a pair of strings for ``replace LINE "old" "new"``: ``old`` is
the slip with as much of its line around it as makes its first occurrence in
the line the slip itself, so the command a model copies from the finding
changes exactly that place.

Precision comes before recall: a proofreader that damages good text is worse
than none. So only prose and headings are looked at (not code, tables,
HTML or front matter), nothing inside inline code, links or URLs, a word the
lines looked at use twice (or use in another form: "submatcher" beside
"submatchers") is taken as meant, and a capitalised or upper-case word is
not re-spelt from the word list (a name is not a typo), only from codespell.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from infitool_edit.document.buffer import lines_between

MAX_FINDINGS = 20

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
# What a word is not checked inside: inline code, a link's target, a URL, an
# e-mail address, a path or an identifier (letters joined by _ . / : @ or digits).
_SKIPPED = re.compile(r"`[^`]*`|\]\([^)]*\)|<[^>\s]*>|\b\w+://\S+|\S*[@/\\_]\S*|\w*\d\w*|\w+(?:[.:]\w+)+")
_INDENTED_CODE = re.compile(r"^(?: {4}|\t)")
_LIST_OR_QUOTE = re.compile(r"^\s*(?:[-*+>]|\d+[.)])\s")
KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
# A small letter after these is not a new sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al approx ca dept est fig no vol eq ch sec ibid op viz resp incl".split()
)
_SENTENCE_END = ".!?"
_CLOSING = "\"')]*_"


@dataclass(frozen=True)
class Finding:
    """One likely slip: on ``line`` (0-based), ``old`` should read ``new``."""

    line: int
    old: str
    new: str
    kind: str  # spelling, doubled word, doubled space, capital, space before, full stop
    # Whether ``old`` first occurs in the whole draft here, so that the
    # draft-wide ``replace "old" "new"`` fixes it (see ``unique_in_draft``).
    anywhere: bool = False


@lru_cache(maxsize=1)
def lexicon() -> dict[str, int]:
    """Known words (lower case) and how often the training prose used each;
    see lexicon/SOURCES.md."""
    data = resources.files("infitool_edit.document").joinpath("lexicon", "words.tsv.gz").read_bytes()
    words: dict[str, int] = {}
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        word, _, count = line.partition("\t")
        words[word] = int(count)
    return words


@lru_cache(maxsize=1)
def codespell_pairs() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """(correct word -> its real misspellings, misspelling -> its one fix),
    lower case, from codespell's main dictionary (entries with one fix only)."""
    import os

    import codespell_lib

    path = os.path.join(os.path.dirname(codespell_lib.__file__), "data", "dictionary.txt")
    wrong_for: dict[str, list[str]] = {}
    fix: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            wrong, _, rest = line.strip().partition("->")
            fixes = [x.strip() for x in rest.split(",") if x.strip()]
            if len(fixes) != 1 or not wrong.isalpha() or not fixes[0].isalpha():
                continue
            fix[wrong] = fixes[0]
            wrong_for.setdefault(fixes[0], []).append(wrong)
    return {k: tuple(v) for k, v in wrong_for.items()}, fix


def _neighbours() -> dict[str, str]:
    near: dict[str, str] = {}
    for r, row in enumerate(KEYBOARD):
        for c, key in enumerate(row):
            keys = [row[x] for x in (c - 1, c + 1) if 0 <= x < len(row)]
            for other in (r - 1, r + 1):
                if 0 <= other < len(KEYBOARD):
                    keys += [KEYBOARD[other][x] for x in (c - 1, c, c + 1) if 0 <= x < len(KEYBOARD[other])]
            near[key] = "".join(keys)
    return near


# The keys beside each key on a QWERTY keyboard: where a slip of the finger lands.
NEIGHBOURS = _neighbours()


def _slips_undone(word: str) -> set[str]:
    """Every word one keyboard slip away: a letter dropped, doubled, swapped
    with the next, or struck beside the right key (never the first letter,
    which a writer rarely gets wrong)."""
    out = set()
    for i in range(1, len(word) + 1):
        for letter in "abcdefghijklmnopqrstuvwxyz":
            out.add(word[:i] + letter + word[i:])  # a dropped letter put back
    for i in range(1, len(word)):
        out.add(word[:i] + word[i + 1 :])  # a doubled or stray letter taken out
        if i + 1 < len(word):
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])  # a swap undone
        for key in NEIGHBOURS.get(word[i], ""):
            out.add(word[:i] + key + word[i + 1 :])  # the key beside
    out.discard(word)
    return out


# Endings a word list may lack a form with: the ending, and what the stem may
# have ended with before it ("ramping" from "ramp", "raced" from "race",
# "carried" from "carry"; a doubled last letter, "stopped", is tried too).
_ENDINGS = (
    ("ing", ("", "e")), ("ed", ("", "e")), ("ied", ("y",)), ("ies", ("y",)), ("es", ("",)), ("s", ("",)),
    ("ly", ("", "le")), ("er", ("", "e")), ("ers", ("", "e")), ("est", ("", "e")), ("ness", ("",)),
)


def _stems(lower: str):
    """For each of the ``_ENDINGS`` ``lower`` ends in (a stem of 4 letters or more left): the
    stem, and the words it may have been before the ending (``"carried"``: ``"carri"``, ``["carry"]``)."""
    for ending, tails in _ENDINGS:
        if lower.endswith(ending) and len(lower) - len(ending) >= 4:
            stem = lower[: -len(ending)]
            yield stem, [stem + tail for tail in tails]


def _known(word: str, words: dict[str, int]) -> bool:
    lower = word.lower()
    if lower in words:
        return True
    for ending in ("'s", "s'", "'"):
        if lower.endswith(ending) and lower[: -len(ending)] in words:
            return True
    for stem, bases in _stems(lower):
        if any(base in words for base in bases) or (stem[-1:] == stem[-2:-1] and stem[:-1] in words):
            return True
    return "'" in lower and all(part in words or part in ("s", "t", "d", "ll", "re", "ve", "m") for part in lower.split("'"))


def _stem_used(lower: str, used: dict[str, int]) -> bool:
    """Whether ``used`` holds ``lower`` with one of the ``_ENDINGS`` taken off."""
    return any(used.get(base) for _, bases in _stems(lower) for base in bases)


def match_case(model: str, word: str) -> str:
    """``word`` in the case of ``model``: UPPER, Capitalised or as it is."""
    if model.isupper() and len(model) > 1:
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def spelling_fix(word: str, used: dict[str, int]) -> str | None:
    """The fix of a misspelt word, or None when it is known, meant, or has
    no single likely fix. ``used`` counts the draft's own words (lower case)."""
    words = lexicon()
    lower = word.lower()
    if len(word) < 3 or "'" in word or lower in words:
        return None
    fix = codespell_pairs()[1].get(lower)
    if fix is not None:
        return match_case(word, fix)
    if _known(word, words) or len(word) < 4 or word[:1].isupper() or used.get(lower, 0) > 1:
        return None
    # A word the list lacks whose stem the same lines also use ("submatchers" beside "for that
    # submatcher") is the writer's own term, not a slip for the nearest listed word ("submatches").
    if _stem_used(lower, used):
        return None
    candidates = sorted((-words[c], c) for c in _slips_undone(lower) if c in words)
    if not candidates:
        return None
    (best_count, best), rest = candidates[0], candidates[1:]
    # Two fixes the prose uses about as often: no single likely fix.
    if rest and -rest[0][0] * 2 >= -best_count:
        return None
    return best


# --- where a finding sits in its line -------------------------------------------


def unique_old(line: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) grown by whole words (left first, then right) until its
    first occurrence in ``line`` is at ``start``."""
    while line.find(line[start:end]) != start:
        if start > 0:
            start = _grow_left(line, start)
        elif end < len(line):
            end = _grow_right(line, end)
        else:
            break
    return start, end


def unique_in_draft(findings: list[Finding], lines: Sequence[str], text: str) -> list[Finding]:
    """The findings with each ``old`` grown inside its line until its first
    occurrence in the whole draft (``text``, split into ``lines``) is the
    slip itself; such a finding is fixed by ``replace "old" "new"``, whose
    search string the decoder's mask holds to the draft. A line whose whole
    text occurs earlier keeps the line-scoped finding (``anywhere`` False)."""
    starts = [0]
    for line in lines_between(lines, 0, max(finding.line for finding in findings)):
        starts.append(starts[-1] + len(line) + 1)
    out = []
    for finding in findings:
        line = lines[finding.line]
        slip_start = line.find(finding.old)
        a, b = slip_start, slip_start + len(finding.old)
        while text.find(line[a:b]) != starts[finding.line] + a and (a > 0 or b < len(line)):
            a, b = (_grow_left(line, a), b) if a > 0 else (a, _grow_right(line, b))
        if text.find(line[a:b]) != starts[finding.line] + a:
            out.append(finding)
            continue
        old = line[a:b]
        new = old[: slip_start - a] + finding.new + old[slip_start - a + len(finding.old) :]
        out.append(Finding(finding.line, old, new, finding.kind, anywhere=True))
    return out


def _grow_left(line: str, start: int) -> int:
    """``start`` moved to the start of the word before it (or of its own word, mid-word)."""
    while start > 0 and line[start - 1].isspace():
        start -= 1
    while start > 0 and not line[start - 1].isspace():
        start -= 1
    return start


def _grow_right(line: str, end: int) -> int:
    while end < len(line) and line[end].isspace():
        end += 1
    while end < len(line) and not line[end].isspace():
        end += 1
    return end


# --- the checks ------------------------------------------------------------------


def _prose_part(line: str) -> tuple[str, bytearray]:
    """The line with its skipped stretches blanked out (same length, so
    positions in it are positions in the line), and which characters were."""
    blanked = bytearray(len(line))
    for m in _SKIPPED.finditer(line):
        blanked[m.start() : m.end()] = b"\1" * (m.end() - m.start())
    return _SKIPPED.sub(lambda m: " " * len(m.group()), line), blanked


def _spelling(index: int, line: str, prose: str, used: dict[str, int]) -> list[Finding]:
    found = []
    for match in _WORD.finditer(prose):
        word = match.group()
        fix = spelling_fix(word, used)
        if fix is None or fix == word:
            continue
        start, end = unique_old(line, match.start(), match.end())
        old = line[start:end]
        found.append(Finding(index, old, old[: match.start() - start] + fix + old[match.end() - start :], "spelling"))
    return found


_DOUBLED_WORD = re.compile(r"\b([A-Za-z]+) \1\b", re.IGNORECASE)
# Exactly two: three or more spaces inside a line align a table, code or a list.
_DOUBLED_SPACE = re.compile(r"(?<=\S)  (?=\S)")
# A sentence's end with its closing marks, the spaces after it, up to the next sentence's start.
_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]*_`]* +(?=[\"'(\[*_`]*[A-Z])")
_SMALL_AFTER_STOP = re.compile(r"\b([A-Za-z]+)\. ([a-z][a-z]*)\b")
_SPACE_BEFORE = re.compile(r"(?<=[A-Za-z]) +([,;:?!.])(?= |$)")
# Words a writer doubles on purpose.
_MEANT_TWICE = frozenset({"had", "bye", "very", "so", "no", "yes", "really", "far", "more", "many"})


def doubled_words(text: str) -> Iterator[re.Match]:
    """Each word written twice in a row that a writer would not double on purpose: not one of
    ``_MEANT_TWICE``, not three times or more ("STOP STOP STOP" is meant), and not the end of a
    compound followed by the word itself ("opt-in in some form")."""
    for m in _DOUBLED_WORD.finditer(text):
        word = m.group(1).lower()
        # Only the few bytes around the match: a third time, or a compound's hyphen.
        before = text[max(0, m.start() - len(word) - 1) : m.start()].lower()
        after = text[m.end() : m.end() + len(word) + 2].lower()
        if word in _MEANT_TWICE or before.endswith(("-", f"{word} ")) or re.match(rf" {word}\b", after):
            continue
        yield m


def two_spaces_between_sentences(lines: Sequence[str]) -> bool:
    """Whether these lines end their sentences with two spaces: at least
    twice, or more often than with one (a PEP's and many a typist's habit)."""
    one = two = 0
    for line in lines:
        for m in _SENTENCE_BREAK.finditer(line):
            if m.group().endswith("  "):
                two += 1
            else:
                one += 1
    return two >= 2 or two > one


def _mechanics(index: int, line: str, prose: str, blanked: bytearray, two_spaced: bool) -> list[Finding]:
    found = []

    def add(start: int, end: int, new_part: str, kind: str) -> None:
        if any(blanked[max(0, start - 1) : end + 1]):
            return  # next to inline code, a number or a path: not prose to judge
        a, b = unique_old(line, start, end)
        old = line[a:b]
        found.append(Finding(index, old, old[: start - a] + new_part + old[end - a :], kind))

    for m in doubled_words(prose):
        add(m.start(), m.end(), m.group(1), "doubled word")
    sentence_breaks = {m.end() for m in _SENTENCE_BREAK.finditer(line)} if two_spaced else set()
    for m in _DOUBLED_SPACE.finditer(prose):
        # Where sentences end with two spaces, a colon is followed by two as well (typewriter style).
        after_colon = two_spaced and line[m.start() - 1] == ":"
        if line[m.start() : m.end()].strip(" ") == "" and m.end() not in sentence_breaks and not after_colon:
            start, end = _grow_left(line, m.start()), _grow_right(line, m.end())
            add(start, end, line[start : m.start()] + " " + line[m.end() : end], "doubled space")
    for m in _SMALL_AFTER_STOP.finditer(prose):
        before = line[: m.start(1)]
        if m.group(1).lower() in _ABBREVIATIONS or before.endswith(".") or len(m.group(1)) == 1:
            continue
        add(m.start(1), m.end(), line[m.start(1) : m.start(2)] + m.group(2)[0].upper() + m.group(2)[1:], "capital")
    for m in _SPACE_BEFORE.finditer(prose):
        start = _grow_left(line, m.start())
        add(start, m.end(), line[start : m.start()] + m.group(1), "space before")
    return found


def _needs_full_stop(lines: Sequence[str], offset: int, prose: str, blanked: bytearray) -> bool:
    """A one-line paragraph of sentences (blank lines or the ends of the
    draft around it) whose last sentence has no end: at least eight words,
    a capital first, a small letter last. Not one that leads into what
    follows it (a list, an indented block: a PEP's old headings are such
    lines; a fenced code block; reStructuredText's ``::``) or labels what it
    sits in (a caption between HTML tags)."""
    line = lines[offset]
    if (offset > 0 and lines[offset - 1].strip()) or (offset + 1 < len(lines) and lines[offset + 1].strip()):
        return False
    if not (
        len(prose.split()) >= 8 and line == line.rstrip() and line[:1].isupper() and not blanked[-1]
        and line[-1:].isalpha() and line[-1:].islower() and not _LIST_OR_QUOTE.match(line)
    ):
        return False
    following = next((text for text in lines[offset + 1 :] if text.strip()), "")
    preceding = next((text for text in reversed(lines[:offset]) if text.strip()), "")
    leads_in = (bool(_LIST_OR_QUOTE.match(following)) or following[:1] in (" ", "\t")
                or following.startswith(("```", "~~~", "::")))
    return not leads_in and "<" not in (following.lstrip()[:1], preceding.lstrip()[:1])


PROSE, HEADING = "prose", "heading"


def check(lines: list[str], kinds: list[str | None], first: int = 0) -> tuple[list[Finding], int]:
    """The findings on ``lines`` (the draft's lines from ``first``; ``kinds``
    says of each whether it is PROSE, a HEADING or neither: code, a table,
    HTML), in order, and how many lines were looked at: the look stops after
    the line on which the MAX_FINDINGS-th finding is (so a command that asks
    for the rest starts on a line of its own)."""
    used: dict[str, int] = {}
    for line in lines:
        for word in _WORD.findall(line):
            used[word.lower()] = used.get(word.lower(), 0) + 1
    two_spaced = two_spaces_between_sentences(lines)
    findings: list[Finding] = []
    for offset, (line, kind) in enumerate(zip(lines, kinds)):
        if len(findings) >= MAX_FINDINGS:
            return findings, offset
        if kind is None or not line.strip() or (kind == PROSE and _INDENTED_CODE.match(line)):
            continue
        index = first + offset
        prose, blanked = _prose_part(line)
        on_line = _spelling(index, line, prose, used) + _mechanics(index, line, prose, blanked, two_spaced)
        if kind == PROSE and _needs_full_stop(lines, offset, prose, blanked):
            start, end = unique_old(line, _grow_left(line, len(line)), len(line))
            on_line.append(Finding(index, line[start:end], line[start:end] + ".", "full stop"))
        findings += _apart(line, on_line)
    return findings, len(lines)


def _apart(line: str, found: list[Finding]) -> list[Finding]:
    """The findings of one line in order, without any that overlaps one
    before it: each can be applied after the others, and the next ``check``
    finds what was left out."""
    kept: list[Finding] = []
    taken_until = -1
    for start, finding in sorted(((line.find(f.old), f) for f in found), key=lambda pair: pair[0]):
        if start >= taken_until:
            kept.append(finding)
            taken_until = start + len(finding.old)
    return kept
