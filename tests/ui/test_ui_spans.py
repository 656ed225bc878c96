"""changed_spans: the changed lines of two long texts, found at C speed."""

from __future__ import annotations

import random

import pytest

from infitool_edit.ui.spans import changed_spans


def rebuilt(a: str, b: str, spans) -> str:
    out, at = [], 0
    for a0, a1, b0, b1 in spans:
        out += [a[at:a0], b[b0:b1]]
        at = a1
    return "".join(out) + a[at:]


@pytest.mark.parametrize("seed", range(40))
def test_spans_rebuild_the_new_text_from_whole_lines_of_the_old(seed):
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(["river", "mill", "wheel", "x"]) for _ in range(rng.randrange(0, 8)))
             for _ in range(rng.randrange(1, 60))]
    a = "\n".join(lines) + rng.choice(["", "\n"])
    changed = list(lines)
    for _ in range(rng.randrange(0, 5)):
        at = rng.randrange(len(changed) + 1)
        kind = rng.randrange(3)
        if kind == 0 and at < len(changed):
            changed[at] = changed[at] + " new"
        elif kind == 1:
            changed.insert(at, "inserted line")
        elif changed and at < len(changed):
            del changed[at]
    b = "\n".join(changed) + rng.choice(["", "\n"])
    spans = changed_spans(a, b, max_spans=1000)
    assert rebuilt(a, b, spans) == b
    for a0, a1, b0, b1 in spans:  # whole lines on both sides
        assert a0 == 0 or a[a0 - 1] == "\n"
        assert b0 == 0 or b[b0 - 1] == "\n"
        assert a1 == len(a) or a[a1 - 1] == "\n"
        assert b1 == len(b) or b[b1 - 1] == "\n"
    if a == b:
        assert spans == []


def test_a_few_changes_in_a_long_text_give_a_few_small_spans():
    lines = [f"Line {n} of a long book, with words." for n in range(50_000)]
    a = "\n".join(lines)
    changed = list(lines)
    changed[10] = "Revised: " + changed[10]
    changed[30_000] = "Revised: " + changed[30_000]
    b = "\n".join(changed)
    spans = changed_spans(a, b)
    assert [b[b0:b1] for _, _, b0, b1 in spans] == [changed[10] + "\n", changed[30_000] + "\n"]
    assert changed_spans(a, b, max_spans=1) is None


@pytest.mark.parametrize("seed", range(12))
def test_the_editor_shows_a_version_by_its_changed_lines_as_a_full_load_would(seed, tmp_path):
    import asyncio

    from infitool_edit.document.positions import position_of
    from infitool_edit.ui.app import make_app
    from infitool_edit.ui.preview import positions_of

    rng = random.Random(seed)
    lines = [" ".join(rng.choice(["river", "mill", "a-very-long-word-indeed", "x"]) for _ in range(rng.randrange(0, 40)))
             for _ in range(rng.randrange(1, 80))]
    texts = []
    for _ in range(4):
        changed = list(lines)
        for _ in range(rng.randrange(0, 4)):
            at = rng.randrange(len(changed) + 1)
            if at < len(changed) and rng.random() < 0.5:
                changed[at] += " new words here"
            else:
                changed.insert(at, "```" if rng.random() < 0.3 else "inserted")
        texts.append("\n".join(changed) + rng.choice(["", "\n"]))
    draft = tmp_path / "d.md"
    draft.write_text(texts[0])

    async def run() -> None:
        app = make_app(draft)
        async with app.run_test(size=(60, 20)) as pilot:
            await pilot.pause()
            editor = app.editor
            for text in texts[1:] + texts[:1]:
                editor.show_text(text)
                assert editor.text == text
                incremental = (list(editor._row_counts), list(editor._row_starts), list(editor.buffer.fences))
                editor.load(text)
                assert incremental == (editor._row_counts, editor._row_starts, editor.buffer.fences)
            offsets = sorted(rng.sample(range(len(text) + 1), min(5, len(text) + 1)))
            assert positions_of(text, offsets) == {o: position_of(text, o) for o in offsets}

    asyncio.run(run())
