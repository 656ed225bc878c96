"""The copy prior (agent/copy_prior.py): inside a quoted argument whose last bytes match the goal,
the goal's next byte gets a share of the probability; a resumed backend reads the same bytes as
the live one; and the built-in model, which drifts off a new name, copies it with the prior."""

from __future__ import annotations

import pytest
import torch

from infitool_edit.agent.constrain import LineConstraint, byte_mask_table
from infitool_edit.agent.copy_prior import (
    CONTEXT_BYTES, CopyPrior, continuations, copied_from, goal_spans, last_goal, outline_listing,
)
from infitool_edit.agent.runner import Runner
from infitool_edit.agent.ssm import SSMBackend, random_tiny_model
from infitool_edit.session.editing import EditingSession
from helpers.model_runs import write_draft

GOAL = b'Change the section title "Thread Support" to "Scala".\n'
TABLE = byte_mask_table(259, 200)


def argument_of(line: bytes) -> tuple[bytes, bytes] | None:
    """The grammar constraint's (line before, quoted argument so far) after ``line``, as the
    backend asks it."""
    constraint = LineConstraint(TABLE, 100, None, None)
    for byte in line.removeprefix(b"> "):
        constraint.advance(byte)
    return constraint.open_argument


class Writing:
    """A prior with a command line under way, applied as the backend applies it."""

    def __init__(self, prior: CopyPrior, line: bytes) -> None:
        self.prior, self.argument = prior, argument_of(line)

    def apply(self, logits: torch.Tensor, search_string: bool = False) -> torch.Tensor:
        if self.argument is None:
            return logits
        return self.prior.apply(logits, *self.argument, search_string=search_string)


def test_the_longest_tail_found_in_the_goal_and_what_follows_it():
    assert continuations(GOAL, b"## Sca") == (3, {ord("l"): 1})
    assert continuations(GOAL, b"## Scal") == (4, {ord("a"): 1})
    assert continuations(GOAL, b"## Scala") == (5, {None: 1})  # the goal's span ends: so may the name
    assert continuations(GOAL, b"## Sc") == (0, {})  # too short to be evidence
    assert continuations(b"the lamp, the light\n", b"the l") == (5, {ord("a"): 1, ord("i"): 1})
    assert continuations(b"Add the section Notes.\n", b"Notes") == (5, {None: 1})  # a full stop ends it


def test_where_a_quoted_argument_starts_and_which_goal_is_read():
    assert len(argument_of(b'> replace "## Thread Support" "## Sc')[1]) == 5
    assert len(argument_of(b'> replace "a\\"b')[1]) == 4  # an escaped quote does not close it
    assert argument_of(b'> replace "a" "b"') is None and argument_of(b"> move #a #b") is None
    recent = b"@goal First.\n> goal\n@goal Second one.\n@text 1-2 of 2\n1\xe2\x94\x82@goal not a goal\n"
    assert last_goal(recent) == b"Second one.\n"
    assert last_goal(b"@goal At the start.\n> outline\n") == b"At the start.\n"
    assert last_goal(b"> outline\n") == b""


def test_a_goal_offers_its_quoted_spans_or_else_the_whole_line():
    assert goal_spans(GOAL) == [b"Thread Support", b"Scala"]
    assert goal_spans(b"Rename Winter to Deep Winter.\n") == [b"Rename Winter to Deep Winter."]


def prior_on(line: bytes, goal: bytes = GOAL, draft: str = "") -> Writing:
    prior = CopyPrior(0.9)
    prior.read(b"@goal " + goal + b"> goal\n@goal " + goal)
    prior.start_line(lambda: draft)
    prior.read(line)
    return Writing(prior, line)


def test_the_goal_wins_where_the_model_drifts_and_the_mask_still_rules():
    logits = torch.full((259,), -5.0)
    logits[ord("b")], logits[ord('"')], logits[ord("\\")] = 2.0, 1.0, -1.0  # the model would go on: "Scalab…"
    logits[ord("x")] = float("-inf")  # the grammar forbids it
    mixed = prior_on(b'> replace "## Thread Support" "## Scala').apply(logits)
    assert int(torch.argmax(mixed)) == ord('"')
    assert mixed[ord("x")] == float("-inf") and torch.isfinite(mixed[ord("b")])
    assert torch.softmax(mixed, -1).sum().item() == pytest.approx(1.0, abs=1e-5)
    # The end is shared between the closing quote and an escaped newline as the model shares them.
    shares = torch.softmax(mixed, -1)
    assert shares[ord('"')] / shares[ord("\\")] > torch.softmax(logits, -1)[ord('"')] / torch.softmax(logits, -1)[ord("\\")] - 1e-3
    # Untouched: a done line (a summary, not a copy; no name was written), outside quotes, and the
    # first bytes of text that is not a heading.
    for line in (b'> done "Renamed the section title', b"> move #a", b'> replace "the lamp" "Sc'):
        assert torch.equal(prior_on(line).apply(logits), logits)
    forbidden = logits.clone()
    forbidden[ord('"')] = forbidden[ord("\\")] = float("-inf")  # the span may not end here: the model goes on
    assert int(torch.argmax(prior_on(b'> replace "## Thread Support" "## Scala').apply(forbidden))) == ord("b")


def test_the_new_name_is_copied_not_the_old_one_the_line_already_holds():
    goal = b'Change the section title "Concatenating Keyword Parameters" to "Key Concerns".\n'
    logits = torch.full((259,), -5.0)
    logits[ord("w")], logits[ord(" ")] = 2.0, 0.5  # the model would write the old name's "Keyword"
    line = b'> replace "## Concatenating Keyword Parameters" "## Key'
    assert int(torch.argmax(prior_on(line, goal).apply(logits))) == ord(" ")
    # In the first argument both names are candidates, each from its first letter.
    first = torch.softmax(prior_on(b'> replace "## ', goal).apply(torch.zeros(259)), -1)
    assert first[ord("C")] == pytest.approx(first[ord("K")]) and first[ord("C")] > 0.4


def test_a_headings_name_is_copied_from_its_first_letter_but_only_a_quoted_one():
    goal = b'Start a section "Performance" below "Tuple structs".\n'
    draft = "# Rust\n\n## Tuple structs\n\nA struct without names.\n"
    logits = torch.full((259,), -5.0)
    logits[ord("T")], logits[ord("u")] = 2.0, 1.0  # the model would begin the old name again
    for line in (b'> insert #tuple-structs "## ', b'> insert #tuple-structs "\\n## '):
        assert int(torch.argmax(prior_on(line, goal, draft).apply(logits))) == ord("P")
    assert int(torch.argmax(prior_on(b'> insert #tuple-structs "## P', goal, draft).apply(logits))) == ord("e")
    # a goal that quotes nothing names nothing: its first word is not a heading
    unquoted = b"Start a section Performance below Tuple structs.\n"
    assert torch.equal(prior_on(b'> insert #tuple-structs "## ', unquoted, draft).apply(logits), logits)


def test_a_span_the_draft_holds_is_copied_into_search_strings_only():
    """"Cut the paragraph starting "This PEP serves as"": the span says where, not what to write."""
    goal = b'Cut the paragraph starting "This PEP serves as" in two.\n'
    draft = "# PEP\n\nThis PEP serves as a guide to this PEP. In short, it guides.\n"
    logits = torch.full((259,), -5.0)
    logits[ord("\\")], logits[ord(" ")] = 2.0, 0.5  # the model would break the line here

    def prior(line: bytes) -> Writing:
        copy = CopyPrior(0.9)
        copy.read(b"@goal " + goal)
        copy.start_line(lambda: draft)
        copy.read(line)
        return Writing(copy, line)

    new_text = prior(b'> replace "this PEP. In" "this PEP.')
    assert torch.equal(new_text.apply(logits), logits)
    search = prior(b'> replace "This PEP')
    assert int(torch.argmax(search.apply(logits, search_string=True))) == ord(" ")
    assert torch.equal(search.apply(logits), logits)  # the same bytes as new text: left alone


def test_a_replaces_new_text_copies_the_words_of_its_search_string_and_leaves_the_breaks():
    assert copied_from(b"the developer. As", b"the dev") == (7, {ord("e"): 1})
    assert copied_from(b"the developer. As", b"the developer.") == (14, {})  # a space next: the model's
    assert copied_from(b"one\\ntwo", b"one") == (3, {})  # an escaped new line next: the model's too
    assert copied_from(b"the developer. As", b"r. As") == (5, {None: 1})  # the string ends: so may the text
    assert copied_from(b"the developer. As", b"th") == (0, {})  # too short to be evidence
    goal = b'Cut the paragraph starting "Python defines names" in two.\n'
    draft = "# PEP\n\nPython defines names in many ways, not always clear to the developer. As a result.\n"
    logits = torch.full((259,), -5.0)
    logits[ord("g")], logits[ord("e")] = 2.0, 1.0  # the model drifts: "the devguide"
    drifting = prior_on(b'> replace "the developer. As" "the dev', goal, draft).apply(logits)
    assert int(torch.argmax(drifting)) == ord("e")
    assert torch.equal(prior_on(b'> replace "the developer. As" "the developer.', goal, draft).apply(logits), logits)
    # Not in a search string (the mask holds that to the draft), and the goal's own words first.
    assert torch.equal(prior_on(b'> replace "the dev', goal, draft).apply(logits, search_string=True), logits)


OUTLINE = b'@outline 1 "# It\'s a \\"plan\\"" | 3 "## Proposal" | 7 "### Calendar" | 11 "## Performance"\n'


def test_the_last_outline_is_listed_as_notes_list_it():
    assert outline_listing(b"@goal x\n> outline\n" + OUTLINE + b"> goal\n") == (
        b'It\'s a \\"plan\\"\\n- Proposal\\n  - Calendar\\n- Performance'
    )
    assert outline_listing(b"@goal x\n> outline\n@outline (no headings)\n") == b""
    assert outline_listing(b"@goal x\n") == b""


def test_notes_copy_the_outline_from_their_second_byte_and_not_an_unquoted_goals_words():
    goal = b"Write the outline into the notes.\n"

    def prior(line: bytes) -> Writing:
        copy = CopyPrior(0.9)
        copy.read(b"@goal " + goal + b"> outline\n" + OUTLINE + b"> goal\n@goal " + goal)
        copy.start_line()
        copy.read(line)
        return Writing(copy, line)

    logits = torch.full((259,), -5.0)
    logits[ord("e")], logits[ord("o")] = 2.0, 0.5  # the model would write "Ite…", "Proe…"
    assert int(torch.argmax(prior(b'> notes "I').apply(logits))) == ord("t")
    assert int(torch.argmax(prior(b'> notes "It').apply(logits))) == ord("'")
    assert int(torch.argmax(prior(b'> notes "It\'s a \\"plan\\"\\n- Pr').apply(logits))) == ord("o")
    # the goal's own words are not notes, and a first byte is the model's
    assert torch.equal(prior(b'> notes "- into the n').apply(logits), logits)
    assert torch.equal(prior(b'> notes "').apply(logits), logits)


def test_a_summary_names_the_section_the_session_wrote_and_copies_nothing_else():
    goal = b'Start a section "Performance" below "Tuple structs".\n'

    def prior(line: bytes) -> Writing:
        copy = CopyPrior(0.9)
        copy.read(b"@goal " + goal + b'> insert #tuple-structs "## Performance\\n\\n"\n@ok v2\n')
        copy.start_line()
        copy.read(line)
        return Writing(copy, line)

    logits = torch.full((259,), -5.0)
    logits[ord("S")], logits[ord("u")] = 2.0, 1.0  # the model would name another section
    assert int(torch.argmax(prior(b'> done "Added the section \\"').apply(logits))) == ord("P")
    assert int(torch.argmax(prior(b'> done "Added the section \\"Perf').apply(logits))) == ord("o")
    # outside a quoted name, and after it, the summary is the model's own
    assert torch.equal(prior(b'> done "Added the sec').apply(logits), logits)
    assert torch.equal(prior(b'> done "Added the section \\"Performance\\" be').apply(logits), logits)


def test_a_strength_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="copy_prior"):
        CopyPrior(1.5)


def test_a_resumed_backend_reads_the_stream_end_the_live_one_read(tmp_path):
    model = random_tiny_model()
    draft = write_draft(tmp_path, "# Notes\n\nTeh first line.\n")
    with EditingSession.open(draft, author="writer") as session:
        live = SSMBackend(model, copy_prior=0.9, max_command_bytes=48)
        Runner(session, live, "Rename Notes to Field Notes.", max_commands=5, seed=2, keyframe_every=2).run()
        resumed = SSMBackend(model, copy_prior=0.9, max_command_bytes=48)
        runner = Runner(session, resumed, None, max_commands=0, seed=2, keyframe_every=2)
        runner.open()
    assert resumed.context_chars == CONTEXT_BYTES
    assert resumed.copy_prior.recent == live.copy_prior.recent
    assert last_goal(resumed.copy_prior.recent) == b"Rename Notes to Field Notes.\n"
    # (That the state itself is restored exactly is test_agent_hybrid_models.py's and the runner tests'.)


@pytest.mark.parametrize("asked", ['"Scala"', "outline into the notes"])
def test_the_built_in_model_copies_a_new_name_or_the_outline_with_the_prior_and_drifts_without(
        monkeypatch, asked):
    import infitool_edit.agent.default_model as shipped
    from infitool_edit.agent.ssm import default_model
    from infitool_edit.learn.evaluate import SessionRunner, budget_for, suite_tasks
    from infitool_edit.learn.tasks import check

    monkeypatch.delenv(shipped.FORCE_RANDOM_ENV, raising=False)
    assert shipped.has_trained_default(), "model/weights/ holds no trained checkpoint"
    model, name, decoding = default_model()
    assert decoding.copy_prior > 0  # the shipped folder turns it on
    task = next(t for t in suite_tasks("structure", 20, seed=0) if asked in t.goal)
    runner = SessionRunner()
    try:
        outcomes = {}
        for strength in (0.0, decoding.copy_prior):
            backend = SSMBackend(model, name=name, temperature=0.0, copy_prior=strength)
            out = runner.run(task, backend, budget_for(task), 0)
            outcomes[strength] = check(task, out.text, out.notes)
    finally:
        runner.close()
    assert outcomes == {0.0: False, decoding.copy_prior: True}
