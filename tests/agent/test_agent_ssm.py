"""The model backend: every sampled line is a command, stored states replay
bit for bit, and a rewound session continues as a fresh one would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from infitool_edit.agent.backend import Chunk
from infitool_edit.agent.events import CommandApplied, CommandFailed
from infitool_edit.agent.runner import Runner
from infitool_edit.agent.ssm import ModelError, load_model, random_tiny_model
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.commands import CommandError, parse
from infitool_edit.model.checkpoint import save_checkpoint
from infitool_edit.session.editing import EditingSession
from helpers.model_runs import run_model, short_line_backend, write_draft

DRAFT = "# Notes\n\nTeh first line.\nA second line.\n\n## More\n\nThe end.\n"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return random_tiny_model(0, hidden_size=32, layers=1)


def _draft(folder: Path) -> Path:
    return write_draft(folder, DRAFT)


def test_random_weights_under_the_mask_write_only_commands(tmp_path: Path, model) -> None:
    draft, events, goal = _draft(tmp_path), [], "Fix the typo."
    while sum(isinstance(e, (CommandApplied, CommandFailed)) for e in events) < 40:  # `done` ends a run
        done = sum(isinstance(e, (CommandApplied, CommandFailed)) for e in events)
        events += run_model(draft, model, goal, max_commands=40 - done, seed=3)
        goal = None
    lines = [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]
    assert len(lines) == 40
    for line in lines:
        parse(line)  # raises if the mask let a malformed line through
        assert len(line.encode()) < 48
    failures = [e.message for e in events if isinstance(e, CommandFailed)]
    assert not any(message.startswith("column") for message in failures)


def test_line_numbers_and_search_strings_stay_within_the_draft(model) -> None:
    from infitool_edit.agent.constrain import LineConstraint, byte_mask_table
    from infitool_edit.commands import ast

    draft = DRAFT + 'He said "stop\\now"\tand left.\n'  # quotes, a backslash and a tab need escapes
    table = byte_mask_table(model.config.vocab_size, 48)
    generator = torch.Generator().manual_seed(0)
    lines_seen = searches_seen = 0
    for _ in range(600):
        constraint = LineConstraint(table, 10, lambda: draft)
        while not constraint.finished:
            bias, forced = constraint.mask()
            logits = torch.randn(model.config.vocab_size, generator=generator) * 3 + bias
            token = forced if forced >= 0 else int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator))
            constraint.advance(token)
        command = parse(bytes(constraint.written[:-1]).decode())
        if isinstance(command, ast.Find):
            searches_seen += 1
            assert command.text in draft
        for value in vars(command).values():
            if isinstance(value, ast.Search):
                searches_seen += 1
                assert value.text in draft
            for address in (value, getattr(value, "start", None), getattr(value, "end", None)):
                line = getattr(address, "line", None)
                if isinstance(line, int):
                    lines_seen += 1
                    assert 1 <= line <= (11 if isinstance(command, ast.Insert) else 10)
    assert lines_seen > 20 and searches_seen > 10


def test_stored_states_replay_bit_for_bit(tmp_path: Path, model) -> None:
    draft = _draft(tmp_path)
    with EditingSession.open(draft, author="writer") as session:
        backend = short_line_backend(model)
        Runner(session, backend, "Fix the typo.", max_commands=15, seed=1, keyframe_every=4).run()
        log = StreamLog(stream_dir_for(session.history))
    chain = log.chain(log.head)
    fresh = short_line_backend(model)  # reads the whole stream from nothing
    fresh.load(None, [Chunk(log.chunk(r), r.model_bytes) for r in chain], log.head.tokens)
    assert fresh.state == backend.state
    assert torch.equal(fresh.logits, backend.logits)
    keyframed = short_line_backend(model)  # the last stored state, then the records since
    since = log.chain(log.head, since_state=True)
    assert since[0].state_slot is not None and len(since) <= 4
    keyframed.load(log.state(since[0]), [Chunk(log.chunk(r), r.model_bytes) for r in since[1:]], log.head.tokens)
    assert keyframed.state == backend.state
    assert keyframed.stream_tokens == backend.stream_tokens == log.head.tokens


@pytest.mark.parametrize("how", ["rewind", "fork"])
def test_rewind_and_continue_equals_a_fresh_run_from_there(tmp_path: Path, model, how: str) -> None:
    # The model drafts one command at a time until it has made a version past
    # the first few; that version is the target. A copy of the session folder
    # taken there is a run that never went past it: the reference the rewind
    # must equal (it never runs the rewind code, so a broken rewind cannot
    # carry into both sides).
    draft = _draft(tmp_path / "live")
    made = 0
    while True:
        events = run_model(draft, model, "Fix the typo." if made == 0 else None, max_commands=1, seed=7, keyframe_every=3)
        made += sum(isinstance(e, (CommandApplied, CommandFailed)) for e in events)
        with EditingSession.open(draft, author="writer") as session:
            head = StreamLog(stream_dir_for(session.history)).head
        if made >= 5 and head.version is not None and head.version > 1:
            target = head.version
            break
        assert made < 40, "the model made no version in 40 commands"
    shutil.copytree(tmp_path / "live", tmp_path / "at-target")
    while made < 14:  # the model goes on past the target
        events = run_model(draft, model, None, max_commands=14 - made, seed=7, keyframe_every=3)
        made += sum(isinstance(e, (CommandApplied, CommandFailed)) for e in events)
    with EditingSession.open(draft, author="writer") as session:
        log = StreamLog(stream_dir_for(session.history))
        later = [r for r in log.chain(log.head) if r.index > log.record_for_version(target).index]
        assert any(log.chunk(r).startswith("> ") for r in later)  # there is something to forget
    shutil.copytree(tmp_path / "live", tmp_path / "fresh")

    # Live: the runner is warm; the writer rewinds; the model's mind follows.
    with EditingSession.open(draft, author="writer") as session:
        events: list = []
        runner = Runner(session, short_line_backend(model), None, max_commands=6, seed=7, emit=events.append, keyframe_every=3)
        runner.open()
        _go_back(session, how, target)  # the open runner hears it from the session
        runner.run()
        live = [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]
        backend = runner.backend
        while len(live) < 6:  # the model said done: the session goes on
            events = []
            Runner(session, backend, None, max_commands=6 - len(live), emit=events.append, keyframe_every=3).run()
            live += [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]
        live_text = session.draft_path.read_text()
        live_state = backend.state
        log = StreamLog(stream_dir_for(session.history))
        live_chain = log.chain(log.head)

    # The live stream is the stream at the target, the writer's rewind, and
    # what the model wrote since: the commands after the target are gone
    # from it, and the model's state is that of a mind that never saw them.
    with EditingSession.open(tmp_path / "at-target" / "draft.md", author="writer") as session:
        at_target = StreamLog(stream_dir_for(session.history))
        before = [at_target.chunk(r) for r in at_target.chain(at_target.head)]
    live_chunks = [log.chunk(r) for r in live_chain]
    assert live_chunks[: len(before)] == before
    assert live_chunks[len(before)].startswith(f"@user {how} v{target}\n")
    # The records themselves, not their text: a random model may well write
    # the same short command again after the rewind.
    assert not {r.index for r in later} & {r.index for r in live_chain}
    never_went_past = short_line_backend(model)
    replay = before + live_chunks[len(before) :]
    never_went_past.load(None, [Chunk(text, r.model_bytes) for text, r in zip(replay, live_chain)], live_chain[-1].tokens)
    assert never_went_past.state == live_state

    # Fresh: the writer rewinds with no agent running; later a new runner
    # (a new process, a new model) picks the session up from the history.
    fresh_draft = tmp_path / "fresh" / "draft.md"
    with EditingSession.open(fresh_draft, author="writer") as session:
        _go_back(session, how, target)
    fresh: list[str] = []
    while len(fresh) < 6:
        events = run_model(fresh_draft, model, None, max_commands=6 - len(fresh), seed=7, keyframe_every=3)
        fresh += [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]

    assert len(live) == 6
    assert fresh == live
    assert fresh_draft.read_text() == live_text
    with EditingSession.open(fresh_draft, author="writer") as session:
        log = StreamLog(stream_dir_for(session.history))
        chain = log.chain(log.head)
        rebuilt = short_line_backend(model)
        rebuilt.load(None, [Chunk(log.chunk(r), r.model_bytes) for r in chain], log.head.tokens)
        assert rebuilt.state == live_state
        # the resumed stream forgot what came after the target, as the live one did
        assert [log.chunk(r) for r in chain] == live_chunks


def _go_back(session: EditingSession, how: str, version: int):
    return session.execute(f"rewind v{version}") if how == "rewind" else session.fork(version)


def test_a_checkpoint_for_another_tokenizer_is_a_one_line_error(tmp_path: Path) -> None:
    from infitool_edit.model import MambaConfig, MambaLM

    small = MambaLM(MambaConfig(vocab_size=100, hidden_size=16, state_size=4, num_hidden_layers=1))
    save_checkpoint(small, tmp_path / "ckpt")
    with pytest.raises(ModelError, match="100 token embeddings, the byte tokenizer needs 259"):
        load_model(tmp_path / "ckpt")
