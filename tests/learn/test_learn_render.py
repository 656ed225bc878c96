"""The one renderer: a training stream is exactly what a live run stores."""

import io

from rich.console import Console

from infitool_edit.agent.headless import run_headless
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.stream import stream_dir_for
from infitool_edit.learn.render import Renderer, count_commands
from infitool_edit.session.editing import EditingSession

DRAFT = "# Notes\n\n## Intro\n\nTeh lamp was lit at dusk.\n\nThe the ships passed.\n"
SCRIPT = [
    "outline",
    "read 5",
    'replace "Teh" "The"',
    'replace 99 "x" "y"',  # refused: the model reads the error, as at run time
    'note "second paragraph next"',
    'replace "The the" "The"',
    "read #notes/intro",
    'done "Fixed two slips."',
]


def live_stream(tmp_path, draft, goal, script):
    path = tmp_path / "draft.md"
    path.write_text(draft)
    script_file = tmp_path / "script.txt"
    script_file.write_text("\n".join(script) + "\n")
    run_headless(path, goal, backend=ScriptedBackend(script_file), console=Console(file=io.StringIO()))
    with EditingSession.open(path, author="writer") as session:
        return (stream_dir_for(session.history) / "stream.txt").read_text(), session.workspace.text


def test_a_rendered_stream_equals_the_stream_of_a_live_run(tmp_path):
    live, live_text = live_stream(tmp_path, DRAFT, "Fix the typos.", SCRIPT)
    with Renderer() as renderer:
        rendered = renderer.render(DRAFT, "Fix the typos.", SCRIPT)
        again = renderer.render(DRAFT, "Fix the typos.", SCRIPT)
    assert rendered.stream == live
    assert again.stream == live  # a renderer reused for many streams starts each one fresh
    assert rendered.text == live_text == "# Notes\n\n## Intro\n\nThe lamp was lit at dusk.\n\nThe ships passed.\n"
    assert rendered.notes.strip() == "second paragraph next"
    assert (rendered.commands, rendered.errors) == (8, 1) == count_commands(live)
    assert rendered.finished
    assert live.startswith("@goal Fix the typos.\n@view draft.md, 7 lines")


def test_the_draft_name_is_what_the_model_sees(tmp_path):
    with Renderer() as renderer:
        rendered = renderer.render("Plain text.\n", "Look.", ["read", 'done ""'], name="pep-0008.txt")
    assert "@view pep-0008.txt, 1 lines" in rendered.stream or "@view pep-0008.txt, 1 line" in rendered.stream
    assert rendered.text == "Plain text.\n"
