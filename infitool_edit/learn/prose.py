"""A phase-1 data folder from the clean-prose corpus alone: ``prose.jsonl`` (training files),
``heldout/prose.jsonl`` (held-out files) and ``manifest.json``.

``infitool-edit prepare`` writes the full folder (with the streams); this is what training
needs before that exists:  python -m infitool_edit.learn.prose OUT_DIR
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from infitool_edit.learn.corpus import documents


def write_prose_folder(out: str | Path) -> dict:
    out = Path(out)
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    sources: dict[str, dict] = defaultdict(lambda: {"documents": 0, "bytes": 0, "heldout_documents": 0})
    counts = {"prose": 0, "heldout_prose": 0, "prose_bytes": 0}
    with open(out / "prose.jsonl", "w", encoding="utf-8") as train, open(
        out / "heldout" / "prose.jsonl", "w", encoding="utf-8"
    ) as heldout:
        for document in documents("all"):
            text = document.text.strip()
            if not text:
                continue
            row = {"text": text, "source": document.source, "path": document.path, "licence": document.licence}
            entry = sources[document.source]
            entry["licence"] = document.licence
            if document.held_out:
                heldout.write(json.dumps(row, ensure_ascii=False) + "\n")
                entry["heldout_documents"] += 1
                counts["heldout_prose"] += 1
            else:
                train.write(json.dumps(row, ensure_ascii=False) + "\n")
                entry["documents"] += 1
                entry["bytes"] += len(text.encode("utf-8"))
                counts["prose"] += 1
                counts["prose_bytes"] += len(text.encode("utf-8"))
    manifest = {"sources": dict(sources), "counts": counts, "written_by": "infitool_edit.learn.prose"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m infitool_edit.learn.prose OUT_DIR")
    print(json.dumps(write_prose_folder(sys.argv[1])["counts"]))
