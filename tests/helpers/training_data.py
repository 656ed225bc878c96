"""A small training folder built from real runs: prose from the project's docs, and the streams
two scripted sessions on examples/draft.md store (the runtime's own renderer)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from rich.console import Console

from infitool_edit.agent.headless import run_headless
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.learn.corpus import project_doc_documents
from infitool_edit.session.editing import EditingSession

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def real_stream(folder: Path, script: str, goal: str) -> str:
    """The stream a scripted `infitool-edit run` stores, read back from the session's store."""
    draft = folder / "draft.md"
    folder.mkdir(parents=True)
    shutil.copyfile(EXAMPLES / "draft.md", draft)
    run_headless(draft, goal, backend=ScriptedBackend(EXAMPLES / script), console=Console(file=io.StringIO()))
    with EditingSession.open(draft, author="writer") as session:
        log = StreamLog(stream_dir_for(session.history))
        text = "".join(log.chunk(r) for r in log.chain(log.head))
        log.close()
    return text


def data_folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "prose.jsonl", "w") as file:
        for document in project_doc_documents():
            file.write(json.dumps({"text": document.text, "source": document.source, "path": document.path,
                                   "licence": document.licence}) + "\n")
    (data / "heldout").mkdir()
    (data / "heldout" / "prose.jsonl").write_text(json.dumps({"text": (EXAMPLES / "draft.md").read_text()}) + "\n")
    with open(data / "streams.jsonl", "w") as file:
        for index, (script, goal) in enumerate(
            [("tighten-intro.cmds", "Tighten the introduction."), ("bad-line.cmds", "Fix the typo.")]
        ):
            stream = real_stream(tmp_path / f"run{index}", script, goal)
            file.write(json.dumps({"stream": stream, "task": "traces", "source": "examples", "path": script}) + "\n")
    return data
