"""The byte mask and move: the text to move, when a search string, is held
to the draft (as for every verb's first argument), and where it goes is
never a search string, so no search string of a move escapes the draft."""

from __future__ import annotations

import torch

from infitool_edit.agent.constrain import LineConstraint, byte_mask_table
from infitool_edit.commands import ast, parse

DRAFT = "# Notes\n\nThe lamp was lit.\nThe glass fell.\n"


def allowed_after(constraint: LineConstraint, written: bytes) -> set[int]:
    for byte in written:
        constraint.advance(byte)
    row, forced = constraint.mask()
    return {forced} if forced >= 0 else set(torch.isfinite(row).nonzero().flatten().tolist())


def test_the_text_to_move_is_held_to_the_draft():
    table = byte_mask_table(256, 64)
    assert allowed_after(LineConstraint(table, 4, lambda: DRAFT), b'move "The ') == {ord("l"), ord("g"), ord('"')}
    assert allowed_after(LineConstraint(table, 4, lambda: DRAFT), b'move "lamp') == {ord(" "), ord('"')}
    assert ord("z") not in allowed_after(LineConstraint(table, 4, lambda: DRAFT), b'move "')


def test_where_it_goes_is_a_line_a_point_a_heading_or_the_end():
    table = byte_mask_table(256, 64)
    allowed = allowed_after(LineConstraint(table, 4, lambda: DRAFT), b'move "lamp" ')
    assert ord('"') not in allowed and {ord("#"), ord("$"), ord("1")} <= allowed


def test_random_moves_under_the_mask_name_only_text_that_is_there():
    table = byte_mask_table(256, 48)
    generator = torch.Generator().manual_seed(3)
    searched = 0
    for _ in range(80):
        constraint = LineConstraint(table, 4, lambda: DRAFT)
        for byte in b"move ":
            constraint.advance(byte)
        while not constraint.finished:
            bias, forced = constraint.mask()
            logits = torch.randn(256, generator=generator) * 3 + bias
            token = forced if forced >= 0 else int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator))
            constraint.advance(token)
        command = parse(bytes(constraint.written[:-1]).decode())
        assert isinstance(command, ast.Move) and not isinstance(command.to, ast.Search)
        if isinstance(command.target, ast.Search):
            searched += 1
            assert command.target.text in DRAFT
    assert searched > 5, searched
