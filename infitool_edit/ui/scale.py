"""The scale of a version, read from its command line: structure,
paragraph, sentence or word. The timeline shows it and filters by it."""

from __future__ import annotations

import re

SCALES = ("structure", "paragraph", "sentence", "word")

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def scale_of_text(text: str) -> str:
    """How much prose a piece of inserted or removed text amounts to."""
    text = text.replace("\\n", "\n")
    if text.lstrip("\n").startswith("#") or "\n#" in text:
        return "structure"
    if "\n" in text.strip("\n") or len(text) > 400:
        return "paragraph"
    if _SENTENCE_END.search(text) or len(text) > 60:
        return "sentence"
    return "word"


def scale_of_command(line: str) -> str | None:
    """The scale of a recorded command; None for versions that do not change
    the draft's prose (notes, checkpoints, opening)."""
    verb, _, rest = line.partition(" ")
    if verb in ("rewind", "fork", "reload"):
        return "structure"
    if verb not in ("insert", "delete", "replace"):
        return None
    quoted = _QUOTED.findall(rest)
    address = rest.split(" ", 1)[0] if rest else ""
    if verb == "delete" and not quoted:
        if address.startswith("#"):
            return "structure"
        if re.fullmatch(r"\d+(?:-\d+)?", address):
            return "paragraph"
        return "sentence"
    # The last quoted string is what is written (insert, replace) or removed.
    return scale_of_text(quoted[-1]) if quoted else "word"
