"""Properties over random drafts and random editing commands: inverses restore
the text, a command log replays to the same draft byte for byte, the reported
TextEdit is exactly what changed, and the outline stays what a full parse says."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infitool_edit.commands import ast, parse, serialize
from infitool_edit.document import ApplyError, Workspace
from infitool_edit.document.structure import MarkdownStructure

PIECES = ["# ", "## ", "```", "\n", "\n\n", "word ", "é", "🙂", "-", "===", "> ", "  ", "Tab\t", '"q"', "\\"]
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map("".join)
drafts = st.lists(st.sampled_from(PIECES + ["Para one. Two.\n", "# Head\n", "## Sub head\n"]), max_size=25).map("".join)
SCALES = {"structure", "paragraph", "sentence", "word"}


def positions(workspace: Workspace):
    lines = workspace.lines
    return st.integers(0, len(lines) - 1).flatmap(
        lambda line: st.tuples(st.just(line), st.integers(0, len(lines[line])))
    )


def point_of(position) -> ast.Point:
    return ast.Point(position[0] + 1, position[1] + 1)


def addressable_headings(workspace: Workspace) -> list[ast.Heading]:
    """Headings a command line can name (an empty title has an empty slug)."""
    return [ast.Heading(heading.path) for heading in workspace.outline() if all(heading.path)]


def point_addresses(workspace: Workspace, data) -> ast.PointAddress:
    kinds = ["point", "end"]
    if workspace.line_count:
        kinds += ["line", "search"]
    if addressable_headings(workspace):
        kinds.append("heading")
    kind = data.draw(st.sampled_from(kinds))
    if kind == "point":
        return point_of(data.draw(positions(workspace)))
    if kind == "line":
        return ast.Line(data.draw(st.integers(1, workspace.line_count + 1)))
    if kind == "heading":
        return data.draw(st.sampled_from(addressable_headings(workspace)))
    if kind == "search":
        return ast.Search(data.draw(substrings(workspace.text)))
    return ast.End()


def range_addresses(workspace: Workspace, data) -> ast.RangeAddress:
    kinds = ["span"]
    if workspace.line_count:
        kinds += ["line", "lines", "search"]
    if addressable_headings(workspace):
        kinds.append("heading")
    kind = data.draw(st.sampled_from(kinds))
    if kind == "span":
        start, end = sorted([data.draw(positions(workspace)), data.draw(positions(workspace))])
        return ast.Span(point_of(start), point_of(end))
    if kind == "line":
        return ast.Line(data.draw(st.integers(1, workspace.line_count)))
    if kind == "lines":
        first = data.draw(st.integers(1, workspace.line_count))
        return ast.LineRange(first, data.draw(st.integers(first, workspace.line_count)))
    if kind == "heading":
        return data.draw(st.sampled_from(addressable_headings(workspace)))
    return ast.Search(data.draw(substrings(workspace.text)))


def substrings(text: str):
    return st.integers(0, max(0, len(text) - 1)).flatmap(
        lambda start: st.integers(start + 1, min(len(text), start + 8)).map(lambda end: text[start:end])
    ) if text else st.just("x")


def editing_commands(workspace: Workspace, data) -> ast.Command:
    verb = data.draw(st.sampled_from(["insert", "delete", "replace", "replace-old"]))
    if verb == "insert":
        return ast.Insert(point_addresses(workspace, data), data.draw(texts))
    target = range_addresses(workspace, data)
    if verb == "delete":
        return ast.Delete(target)
    new = data.draw(st.one_of(st.just(""), texts))
    if verb == "replace-old" and not isinstance(target, ast.Search):
        return ast.Replace(target, new, data.draw(substrings(workspace.text)))
    return ast.Replace(target, new)


def apply_text_edit(lines: list[str], edit) -> str:
    """What a view does with a TextEdit: splice its own copy of the lines."""
    (start_line, start_col), (end_line, end_col) = edit.start, edit.end
    joined = lines[start_line][:start_col] + edit.text + lines[end_line][end_col:]
    return "\n".join(lines[:start_line] + joined.split("\n") + lines[end_line + 1 :])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draft=drafts, data=st.data())
def test_applying_a_command_then_its_inverse_restores_the_text(draft, data):
    workspace = Workspace(draft)
    command = editing_commands(workspace, data)
    before_lines = list(workspace.lines)
    try:
        outcome = workspace.apply(command)
    except ApplyError:
        assert workspace.text == draft
        return
    assert outcome.scale in SCALES
    assert apply_text_edit(before_lines, outcome.edit) == workspace.text
    workspace.apply(outcome.inverse)
    assert workspace.text == draft
    assert workspace.outline() == MarkdownStructure(draft.split("\n")).outline()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draft=drafts, data=st.data())
def test_replaying_the_command_log_reproduces_the_draft_byte_for_byte(draft, data):
    workspace = Workspace(draft)
    log: list[str] = []
    for _ in range(data.draw(st.integers(1, 12))):
        command = editing_commands(workspace, data)
        before = (workspace.text, workspace.notes)
        try:
            workspace.apply(command)
        except ApplyError:
            assert (workspace.text, workspace.notes) == before
            continue
        log.append(serialize(command))  # the history stores the command line
    replayed = Workspace(draft)
    for line in log:
        replayed.apply(parse(line))
    assert replayed.text.encode() == workspace.text.encode()
    assert replayed.outline() == workspace.outline() == MarkdownStructure(workspace.lines).outline()
