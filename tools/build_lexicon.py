"""Build the proofreader's word list, infitool_edit/document/lexicon/words.tsv.gz.

    apt-get download wamerican wbritish
    for p in wamerican wbritish; do dpkg-deb -x ${p}_*.deb /tmp/$p; done
    python tools/build_lexicon.py /tmp/wamerican/usr/share/dict/american-english \
        /tmp/wbritish/usr/share/dict/british-english

One word per line, lower case, letters only, with how often it occurs in the
training split of the project's prose corpus (0 when only a word list has it):
the count picks between two fixes of a slip. The words are SCOWL's American
and British lists (Debian's wamerican and wbritish) and every word the
training prose uses three times or more, less the misspellings codespell
knows. Held-out documents never count, so `eval` checks the proofreader
on prose it did not learn its words from. See lexicon/SOURCES.md.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections import Counter
from pathlib import Path

from infitool_edit.learn.corpus import documents
from infitool_edit.document.proofread import codespell_pairs

OUT = Path(__file__).resolve().parents[1] / "infitool_edit" / "document" / "lexicon" / "words.tsv.gz"
MIN_CORPUS_COUNT = 3
_WORD = re.compile(r"[A-Za-z]+")


def main(word_lists: list[str]) -> None:
    counts: Counter[str] = Counter()
    for document in documents("train"):
        counts.update(word.lower() for word in _WORD.findall(document.text))
    _, fixes = codespell_pairs()
    # A misspelling the prose repeats is still one (codespell knows it as such).
    words = {word for word, n in counts.items() if n >= MIN_CORPUS_COUNT and len(word) > 1 and word not in fixes}
    for path in word_lists:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.isascii() and line.isalpha():
                words.add(line.lower())
    words.update("a i".split())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{word}\t{counts.get(word, 0)}\n" for word in sorted(words))
    # mtime 0 in the gzip header: the same input gives the same bytes.
    OUT.write_bytes(gzip.compress(lines.encode("utf-8"), compresslevel=9, mtime=0))
    print(f"{OUT}: {len(words):,} words, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
