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

from infitool_edit.document.positions import common_prefix, position_of

_WORDS = re.compile(r"\s+|\w+|[^\w\s]")
MAX_MIDDLE_WORDS = 20000


@dataclass(frozen=True)
class WordDiff:
    inserted: list[tuple[int, int]]  # character ranges in the new text
    removed: list[str]  # words (with their spacing) that left the old text


def word_diff(old: str, new: str) -> WordDiff:
    prefix = common_prefix(old, new)
    prefix = _word_start(new, prefix)
    suffix = common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    old_mid, new_mid = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
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
