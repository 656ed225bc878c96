"""`rewind` and `fork` say what happened: the version the file now equals,
the current branch, and that the file on disk changed."""

from __future__ import annotations

from typer.testing import CliRunner

from infitool_edit.cli import app


def run(*args) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_rewind_and_fork_say_which_version_and_branch(example_draft, tmp_path):
    script = tmp_path / "fix.cmds"
    script.write_text('replace 5 "Teh" "The"\n', encoding="utf-8")
    run("apply", example_draft, script)
    said = run("rewind", example_draft, "v1")
    assert said.startswith("v3 on branch main: draft.md now equals v1 (changed on disk)")
    said = run("fork", example_draft, "2")
    assert said.startswith("v4 starts branch fork-1 from v2; draft.md now equals v2 (changed on disk)")
