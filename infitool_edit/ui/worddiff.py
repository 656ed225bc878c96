"""A word-level diff between two versions of a draft.

Prose lives in long lines, so a line diff marks a whole paragraph for one
changed word. The common prefix and suffix are cut first (a command touches
one region), and only the middle is compared word by word; its cost follows
the change, not the draft.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import accumulate

from infitool_edit.document.positions import common_prefix
from infitool_edit.ui.spans import changed_spans

_WORDS = re.compile(r"\s+|\w+|[^\w\s]")
MAX_MIDDLE_WORDS = 20000
MAX_MIDDLE_CHARS = 100_000  # beyond this the middle is cut into lines first (two distant edits)


@dataclass(frozen=True)
class WordDiff:
    inserted: list[tuple[int, int]]  # character ranges in the new text
    removed: list[str]  # words (with their spacing) that left the old text


def word_diff(old: str, new: str) -> WordDiff:
    if len(old) + len(new) > MAX_MIDDLE_CHARS:
        # Long texts: the changed lines first, at C speed; then word by word inside them.
        spans = changed_spans(old, new)
        if spans is not None:
            inserted: list[tuple[int, int]] = []
            removed: list[str] = []
            for a0, a1, b0, b1 in spans:
                inner = _trimmed_diff(old[a0:a1], new[b0:b1])
                inserted += [(b0 + start, b0 + end) for start, end in inner.inserted]
                removed += inner.removed
            return WordDiff(inserted, removed)
    return _trimmed_diff(old, new)


def _trimmed_diff(old: str, new: str) -> WordDiff:
    prefix = common_prefix(old, new)
    prefix = _word_start(new, prefix)
    suffix = common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    old_mid, new_mid = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    if len(old_mid) + len(new_mid) > MAX_MIDDLE_CHARS and "\n" in old_mid and "\n" in new_mid:
        return _by_lines(old_mid, new_mid, prefix)
    old_words, new_words = _WORDS.findall(old_mid), _WORDS.findall(new_mid)
    if len(old_words) + len(new_words) > MAX_MIDDLE_WORDS:
        return WordDiff([(prefix, prefix + len(new_mid))] if new_mid else [], [old_mid] if old_mid else [])
    new_offsets = [prefix]
    for word in new_words:
        new_offsets.append(new_offsets[-1] + len(word))
    inserted: list[tuple[int, int]] = []
    removed: list[str] = []
    matcher = SequenceMatcher(None, old_words, new_words, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            inserted.append((new_offsets[j1], new_offsets[j2]))
        if tag in ("replace", "delete"):
            removed.append("".join(old_words[i1:i2]))
    return WordDiff(inserted, removed)


def _word_start(text: str, index: int) -> int:
    """Move ``index`` back to the start of the word it falls inside."""
    while index > 0 and index <= len(text) and text[index - 1].isalnum():
        index -= 1
    return index


def _by_lines(old_mid: str, new_mid: str, offset: int) -> WordDiff:
    """Versions far apart in a long draft (edits at both ends of the middle):
    find the changed lines first, at C speed, then diff word by word inside
    each changed pair only."""
    old_lines, new_lines = old_mid.split("\n"), new_mid.split("\n")
    # Where each new line starts, at C speed (a book has tens of thousands of lines).
    ends = list(accumulate(map(len, new_lines)))
    starts = [offset] + [offset + end + n + 1 for n, end in enumerate(ends)]
    inserted: list[tuple[int, int]] = []
    removed: list[str] = []
    if len(old_lines) == len(new_lines):
        pairs = [(n, n) for n, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
        for i, j in pairs:
            inner = _trimmed_diff(old_lines[i], new_lines[j])
            inserted += [(starts[j] + a, starts[j] + b) for a, b in inner.inserted]
            removed += inner.removed
        return WordDiff(inserted, removed)
    matcher = SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert") and j2 > j1:
            inserted.append((starts[j1], starts[j2] - 1))
        if tag in ("replace", "delete"):
            removed.append("\n".join(old_lines[i1:i2]))
    return WordDiff(inserted, removed)
