"""The command line, through Typer's CliRunner (quick) and a real subprocess
(what a user runs)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from infitool_edit.cli import _route_bare_draft, app
from infitool_edit.history import History

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def write_script(folder, *lines):
    script = folder / "script.txt"
    script.write_text("\n".join(lines) + "\n")
    return script


def test_apply_records_one_version_per_command_and_prints_observations(example_draft, tmp_path):
    script = write_script(
        tmp_path,
        "// a comment, skipped",
        'replace 5 "Teh" "The"',
        "",
        'note "intro done"',
        "outline",
    )
    result = invoke("apply", example_draft, script)
    assert result.exit_code == 0, result.output
    assert "@ok v2" in result.output and "@ok v3" in result.output
    assert "@outline" in result.output
    assert "The lighthouse on Carrow Point" in example_draft.read_text()
    with History.open(example_draft) as history:
        assert [v.message for v in history.log()][:2] == ['note "intro done"', 'replace 5 "Teh" "The"']
        assert history.count() == 3


def test_apply_stops_at_the_first_failing_command_keeping_what_came_before(example_draft, tmp_path):
    script = write_script(tmp_path, 'replace 5 "Teh" "The"', "delete 9999", 'note "never"')
    result = invoke("apply", example_draft, script)
    assert result.exit_code == 1
    [message] = result.stderr.strip().splitlines()
    assert message.startswith(f"infitool-edit: {script}, line 2: ")
    assert "The lighthouse" in example_draft.read_text()
    with History.open(example_draft) as history:
        assert history.count() == 2


def test_apply_refuses_a_malformed_script_before_applying_anything(example_draft, tmp_path):
    original = example_draft.read_text()
    script = write_script(tmp_path, 'replace 5 "Teh" "The"', 'insert 3 "unterminated')
    result = invoke("apply", example_draft, script)
    assert result.exit_code == 1
    assert "line 2" in result.output
    assert example_draft.read_text() == original


def test_apply_refuses_a_script_that_is_not_utf8(example_draft, tmp_path):
    script = tmp_path / "script.txt"
    script.write_bytes(b'note "caf\xe9"\n')
    result = invoke("apply", example_draft, script)
    assert result.exit_code == 1
    assert "UTF-8" in result.stderr and "line 1" in result.stderr


def test_log_lists_versions_as_a_table(example_draft, tmp_path):
    invoke("apply", example_draft, write_script(tmp_path, 'replace 5 "Teh" "The"', 'note "x"'))
    result = invoke("log", example_draft)
    assert result.exit_code == 0, result.output
    for text in ("v1", "v2", "v3", "disk", "writer", "replace 5"):
        assert text in result.output
    limited = invoke("log", example_draft, "--limit", "1")
    assert "v3" in limited.output and not re.search(r"\bv1\b", limited.output)


def test_log_fits_80_columns_with_forks_long_authors_and_long_commands(example_draft, tmp_path):
    from rich.cells import cell_len

    long_insert = 'insert 1:1 "' + "A sentence far longer than any terminal row is wide. " * 3 + '"'
    invoke("apply", example_draft, write_script(tmp_path, long_insert))
    invoke("apply", example_draft, write_script(tmp_path, 'insert 2:1 "x"'),
           "--author", "model:a-rather-long-model-name-1.5B")
    assert invoke("fork", example_draft, "v2").exit_code == 0
    result = runner.invoke(app, ["log", str(example_draft)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines and all(cell_len(line) <= 80 for line in lines), [cell_len(line) for line in lines]
    rows = {line.split()[0]: line for line in lines if re.match(r"v\d", line)}
    assert set(rows) == {"v1", "v2", "v3", "v4"}
    # What must stay whole stays whole; the command and the author are cut.
    assert "fork-1" in rows["v4"] and "main" in rows["v1"]
    assert re.search(r"\d\d:\d\d:\d\d", rows["v2"])
    assert rows["v2"].rstrip().endswith("…") and 'insert 1:1 "A sentence far' in rows["v2"]
    assert "model:a-rathe…" in rows["v3"]  # 14 cells
    wide = runner.invoke(app, ["log", str(example_draft)], env={"COLUMNS": "200"})
    assert "A sentence far longer than any terminal row is wide. A sentence" in wide.output


def test_show_and_diff(example_draft, tmp_path):
    original = example_draft.read_text()
    invoke("apply", example_draft, write_script(tmp_path, 'replace 5 "Teh" "The"'))
    shown = invoke("show", example_draft, "v1")
    assert shown.exit_code == 0 and shown.output == original
    assert invoke("show", example_draft, "1").output == original
    diff = invoke("diff", example_draft, "1", "v2")
    assert diff.exit_code == 0
    assert "-Teh lighthouse" in diff.output and "+The lighthouse" in diff.output


def test_rewind_and_fork_write_the_draft_and_keep_everything(example_draft, tmp_path):
    original = example_draft.read_text()
    invoke("apply", example_draft, write_script(tmp_path, 'replace 5 "Teh" "The"', 'checkpoint "fixed"'))
    assert invoke("rewind", example_draft, "v1").exit_code == 0
    assert example_draft.read_text() == original
    assert invoke("rewind", example_draft, "fixed").exit_code == 0
    assert "The lighthouse" in example_draft.read_text()
    forked = invoke("fork", example_draft, "1")
    assert forked.exit_code == 0, forked.output
    assert example_draft.read_text() == original
    with History.open(example_draft) as history:
        assert history.count() == 6


@pytest.mark.parametrize(
    "args",
    [("show", "{draft}", "v99"), ("diff", "{draft}", "v1", "v42"), ("rewind", "{draft}", "no-such-name")],
)
def test_unknown_versions_are_one_line_errors(example_draft, args):
    invoke("log", example_draft)  # creates the history
    result = invoke(*(arg.format(draft=example_draft) for arg in args))
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_bench_suite_is_one_line(cli):
    result = cli("bench", "no_such_suite")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "unknown benchmark suite 'no_such_suite'" in line and "core" in line


def test_a_bare_draft_opens_the_editor():
    assert _route_bare_draft(["notes.md"]) == ["edit", "notes.md"]
    assert _route_bare_draft(["log", "notes.md"]) == ["log", "notes.md"]
    assert _route_bare_draft(["--help"]) == ["--help"]
    assert _route_bare_draft([]) == []


def test_the_real_command_runs_as_a_module(cli, example_draft, tmp_path):
    result = cli("apply", example_draft, write_script(tmp_path, 'replace 5 "Teh" "The"'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("@ok v2")
    help_text = cli("--help").stdout
    for command in ("apply", "log", "show", "diff", "rewind", "fork", "bench"):
        assert command in help_text
