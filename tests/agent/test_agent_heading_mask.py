"""The byte mask holds heading paths to the draft: while `#...` is typed only bytes that keep it a
prefix of a path the document engine resolves are allowed, and the address ends only once it does."""

import itertools
import random

import torch

from infitool_edit.agent.constrain import LineConstraint, byte_mask_table, heading_paths
from infitool_edit.agent.ssm import random_tiny_model
from infitool_edit.commands import ast, parse
from infitool_edit.document.structure import MarkdownStructure
from infitool_edit.document.workspace import ApplyError, Workspace

YEAR = "# The Year\n\nAll of it.\n\n## Winter\n\nCold.\n\n## Spring\n\nWarm.\n"


def constraint_after(written: bytes, draft: str | None = YEAR, **kwargs) -> LineConstraint:
    line = LineConstraint(byte_mask_table(256), 12, None if draft is None else (lambda: draft), **kwargs)
    for byte in written:
        assert byte in allowed(line), f"{bytes([byte])!r} refused after {bytes(line.written)!r}"
        line.advance(byte)
    return line


def allowed(line: LineConstraint) -> set[int]:
    row, _ = line.mask()
    return set(torch.isfinite(row).nonzero().flatten().tolist())


def test_after_the_hash_only_the_first_bytes_of_the_drafts_headings():
    after = allowed(constraint_after(b"read #"))
    assert after == {ord("t"), ord("w"), ord("s")}
    assert ord("x") not in after


def test_a_path_ends_only_where_it_resolves():
    assert 0x0A in allowed(constraint_after(b"read #winter"))
    assert 0x0A not in allowed(constraint_after(b"read #wint"))
    assert allowed(constraint_after(b"read #wint")) == {ord("e")}
    # A point in `insert` ends at a space, the grammar's next byte there.
    assert 0x20 in allowed(constraint_after(b'insert #spring'))
    assert 0x20 not in allowed(constraint_after(b'insert #spr'))
    line = constraint_after(b'replace #the-year "Warm." "Mild."\n')
    assert line.finished


def test_nested_paths_follow_the_outline():
    line = constraint_after(b"delete #the-year/spring")
    assert 0x0A in allowed(line)
    assert ord("/") in allowed(constraint_after(b"read #the-year"))
    # Nothing sits under `## Winter`, and `# The Year` is not inside it.
    assert ord("/") not in allowed(constraint_after(b"read #winter"))
    assert allowed(constraint_after(b"read #the-year/")) == {ord("w"), ord("s")}


def test_a_draft_without_headings_bans_the_hash_and_no_draft_leaves_paths_free():
    assert ord("#") not in allowed(constraint_after(b"read ", draft="Just prose.\n"))
    assert ord("#") in allowed(constraint_after(b"read ", draft=YEAR))
    free = constraint_after(b"read #nowhere/at-all", draft=None)  # no draft known: today's mask
    assert 0x0A in allowed(free) and ord("x") in allowed(free)


def test_headings_in_code_are_not_headings_and_the_headings_given_are_used():
    draft = "# Real\n\n```\n# fake\n```\n"
    assert allowed(constraint_after(b"read #", draft=draft)) == {ord("r")}
    # With the headings given, the text is never parsed for them: this one has none.
    headings = Workspace(YEAR).heading_slugs
    line = constraint_after(b"read #", draft="no headings in this other text\n", headings=headings)
    assert allowed(line) == {ord("t"), ord("w"), ord("s")}


def random_draft(chooser: random.Random) -> str:
    """Headings of levels 1-4 whose titles repeat (A, B, C), so first-match rules matter; prose
    between some of them, and once in a while a heading-like line inside a fenced block."""
    parts = []
    for _ in range(chooser.randint(0, 9)):
        parts.append("#" * chooser.randint(1, 4) + " " + chooser.choice("ABC"))
        if chooser.random() < 0.5:
            parts.append("Some prose.")
        if chooser.random() < 0.1:
            parts.append("```\n# " + chooser.choice("ABC") + "\n```")
    return "\n\n".join(parts) + "\n"


def test_the_mask_admits_exactly_the_paths_find_section_resolves():
    """Every path of up to four parts over the slugs a, b, c (and one unknown, d), on random
    drafts: the mask lets it be typed to its end exactly when the document engine resolves it."""
    chooser = random.Random(7)
    table = byte_mask_table(256)
    candidates = [path for size in range(1, 5) for path in itertools.product("abcd", repeat=size)]
    resolved: list[tuple[str, ...]] = []
    for _ in range(20):
        draft = random_draft(chooser)
        structure = MarkdownStructure(draft.split("\n"))
        for path in candidates:
            line = LineConstraint(table, 40, lambda: draft, structure.heading_slugs)
            for byte in b"read #" + "/".join(path).encode() + b"\n":
                if line.mask()[0][byte] != 0:  # refused (-inf)
                    break
                line.advance(byte)
            resolves = structure.find_section(path) is not None
            assert line.finished == resolves, (draft, path)
            if resolves:
                resolved.append(path)
    # The drafts had paths to resolve, nested ones (up to four parts) among them.
    assert len(resolved) > 60 and sum(len(path) > 1 for path in resolved) > 20
    assert max(len(path) for path in resolved) == 4


def test_paths_are_bounded_by_the_depth_of_the_outline():
    """Six levels at most: a heading gets at most 32 paths (one a level below each enclosing
    heading's), however many headings there are; here, 500 chains six deep, the worst case."""
    headings = tuple((level, f"h{index}") for index, level in enumerate([1, 2, 3, 4, 5, 6] * 500))
    paths = heading_paths(headings)
    assert len(paths) == 500 * (1 + 2 + 4 + 8 + 16 + 32) <= 32 * len(headings)
    draft = "".join("#" * level + f" H{index}\n\n" for index, (level, _) in enumerate(headings))
    structure = MarkdownStructure(draft.split("\n"))
    assert structure.heading_slugs() == headings
    for path in random.Random(3).sample(paths, 300):
        assert structure.find_section(tuple(path.decode().split("/"))) is not None


@torch.no_grad()
def test_a_random_model_under_the_mask_writes_only_paths_that_resolve():
    draft = (
        "# The Year\n\n## Winter\n\n### Notes\n\nSnow.\n\n## Spring\n\n### Notes\n\n### Rain\n\n"
        "Wet.\n\n# Appendix\n\n```\n# Not a heading\n```\n\n## Notes\n"
    )
    model = random_tiny_model(2, hidden_size=32, layers=1)
    table = byte_mask_table(model.config.vocab_size, 64)
    generator = torch.Generator().manual_seed(0)
    verbs = [b"read", b"delete", b"jump", b"insert", b"replace", b"check", b"fix"]
    written_paths: list[tuple[str, ...]] = []
    prompt_state = model.new_state()
    prompt_logits = model(torch.tensor([list(b"@goal Anything.\n> ")]), prompt_state, last_only=True)[0][0]
    for index in range(60):
        line = LineConstraint(table, 30, lambda: draft)
        # Most lines start their address with `#` (where the model would choose among many
        # kinds); every tenth is sampled from its first byte.
        start = b"" if index % 10 == 0 else verbs[index % len(verbs)] + b" #"
        state, logits = prompt_state.copy(), prompt_logits
        for byte in start:
            line.advance(byte)
            logits = model.step(torch.tensor([byte]), state)[0]
        while not line.finished:
            bias, forced = line.mask()
            if forced >= 0:
                token = forced
            else:
                token = int(torch.multinomial(torch.softmax(logits + bias, -1), 1, generator=generator))
            line.advance(token)
            logits = model.step(torch.tensor([token]), state)[0]
        command = parse(bytes(line.written[:-1]).decode("utf-8"))
        addresses = [value for value in vars(command).values() if isinstance(value, ast.Heading)]
        for address in addresses:
            written_paths.append(address.path)
            try:
                Workspace(draft).apply(command)
            except ApplyError as error:
                assert "no heading" not in str(error), bytes(line.written)
    assert len(written_paths) >= 48
    assert sum(len(path) > 1 for path in written_paths) >= 6  # nested paths were written too
    assert len(set(written_paths)) >= 6
