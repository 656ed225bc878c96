"""docs/commands.md and examples/edit-session.txt agree with the grammar
(and the example script edits the example draft without a refused command)."""

from __future__ import annotations

import re

import pytest

from infitool_edit.commands import CommandError, EDITING, parse, script_lines, serialize
from infitool_edit.commands import ast
from infitool_edit.commands.grammar import FORMS, VERBS

from helpers import REPOSITORY

ROOT = REPOSITORY
DOC = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
SCRIPT = (ROOT / "examples" / "edit-session.txt").read_text(encoding="utf-8")
DRAFT = (ROOT / "examples" / "draft.md").read_text(encoding="utf-8")


def fenced_blocks(info: str) -> list[list[str]]:
    return [block.split("\n") for block in re.findall(rf"```{info}\n(.*?)\n```", DOC, re.S)]


def stream_turns() -> list[tuple[str, str]]:
    """(model's command line, the runtime's next line) in the stream examples."""
    return [
        (line[2:], answer)
        for block in fenced_blocks("stream")
        for line, answer in zip(block, block[1:] + [""])
        if line.startswith("> ")
    ]


def doc_command_lines() -> list[str]:
    lines = [line for block in fenced_blocks("commands") for line in block]
    lines += [line for line, answer in stream_turns() if not answer.startswith("@error")]
    return lines


def test_every_command_shown_in_the_doc_parses_and_is_canonical():
    lines = doc_command_lines()
    assert len(lines) > 30
    for line in lines:
        assert serialize(parse(line)) == line


def test_every_verb_has_an_example_in_the_doc():
    shown = {line.split(" ")[0] for line in doc_command_lines()}
    assert set(VERBS) <= shown, f"no example for {set(VERBS) - shown}"


def test_every_form_has_its_usage_line_in_the_doc():
    missing = [form.usage for form in FORMS if f"`{form.usage}`" not in DOC]
    assert not missing, f"usage lines missing from docs/commands.md: {missing}"


def test_the_doc_errors_are_the_errors_parse_gives():
    blocks = fenced_blocks("errors")
    assert blocks
    for block in blocks:
        assert len(block) % 2 == 0
        for line, message in zip(block[::2], block[1::2]):
            with pytest.raises(CommandError) as caught:
                parse(line)
            assert str(caught.value) == message


def test_a_refused_line_in_the_stream_example_is_answered_with_its_real_error():
    refused = [(line, answer) for line, answer in stream_turns() if answer.startswith("@error")]
    assert refused
    for line, answer in refused:
        with pytest.raises(CommandError) as caught:
            parse(line)
        assert answer == f"@error {caught.value}"


def test_the_example_script_is_about_25_commands_of_many_kinds():
    commands = [command for _, command in script_lines(SCRIPT)]
    assert 20 <= len(commands) <= 35
    used = {type(command) for command in commands}
    for needed in (ast.Insert, ast.Delete, ast.Replace, ast.Read, ast.Outline, ast.Note,
                   ast.Checkpoint, ast.Done):
        assert needed in used
    assert isinstance(commands[-1], ast.Done)


def test_the_example_script_edits_the_draft_with_every_command_resolving():
    from infitool_edit.document.workspace import Workspace

    workspace = Workspace(DRAFT)
    before = workspace.text
    session_verbs = (ast.Goal, ast.History, ast.Checkpoint, ast.Rewind, ast.Done)
    edits = 0
    for number, command in script_lines(SCRIPT):
        if isinstance(command, session_verbs):
            continue  # the session's, not the document's
        outcome = workspace.apply(command)  # ApplyError would fail the test here
        if isinstance(command, EDITING):
            assert outcome.edit is not None, f"line {number} changed nothing"
            edits += 1
    assert edits >= 10
    text = workspace.text
    assert "Teh" not in text and "The lighthouse on Carrow Point" in text
    assert "In January the keeper's wife" in text
    assert text.index("In January") < text.index("## Summer")
    assert text != before
