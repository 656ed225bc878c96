"""RWKV-7 and Granite-4.0-H as the editor's model: loaded from checkpoint folders, their states
stored with versions replay bit for bit, and a rewound (or forked) session continues exactly as
a fresh run from the target does — a run that never went past it, in a new backend and model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from infitool_edit.agent.backend import Chunk
from infitool_edit.agent.events import CommandApplied, CommandFailed
from infitool_edit.agent.runner import Runner
from infitool_edit.agent.ssm import load_model
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM, HybridState
from infitool_edit.model.hf_folder import save_folder
from infitool_edit.model.rwkv7 import RWKV7Config, RWKV7LM
from infitool_edit.model.tokenizer import ByteTokenizer
from infitool_edit.session.editing import EditingSession
from helpers.model_runs import run_model, short_line_backend, write_draft

DRAFT = "# Notes\n\nTeh first line.\nA second line.\n\n## More\n\nThe end.\n"
VOCAB = ByteTokenizer().vocab_size


def rwkv7_folder(folder: Path) -> Path:
    torch.manual_seed(0)
    config = RWKV7Config(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, head_dim=16, decay_low_rank_dim=16,
                         gate_low_rank_dim=16, a_low_rank_dim=16, v_low_rank_dim=16, intermediate_size=64)
    return save_folder(RWKV7LM(config), folder)


def granite_folder(folder: Path) -> Path:
    torch.manual_seed(0)
    config = GraniteHybridConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, layer_types=["mamba", "attention", "mamba"], mamba_n_heads=4, mamba_d_state=8,
        mamba_d_head=16, mamba_chunk_size=8, num_local_experts=2, num_experts_per_tok=1,
        shared_intermediate_size=32, position_embedding_type="nope", embedding_multiplier=4.0,
        residual_multiplier=0.5, attention_multiplier=0.25, logits_scaling=2.0,
    )
    model = GraniteHybridLM(config)
    with torch.no_grad():  # attention that matters, so a wrong cache would show
        for layer in model.layers:
            if layer.is_attention:
                layer.self_attn.k_proj.weight.normal_(0, 0.3)
                layer.self_attn.q_proj.weight.normal_(0, 0.3)
    return save_folder(model, folder)


# A small window: the sessions below read far more tokens, so the ring wraps many times.
WINDOW = 48


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["rwkv7", "granite"])
def model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    (rwkv7_folder if request.param == "rwkv7" else granite_folder)(folder)
    loaded, tokenizer = load_model(folder, attention_window=WINDOW)
    assert isinstance(tokenizer, ByteTokenizer)
    if request.param == "granite":
        assert isinstance(loaded.new_state(), HybridState) and loaded.new_state().window == WINDOW
    return loaded


def _draft(folder: Path) -> Path:
    return write_draft(folder, DRAFT)


def _lines(events) -> list[str]:
    return [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]


def test_stored_states_replay_bit_for_bit(tmp_path: Path, model) -> None:
    draft = _draft(tmp_path)
    with EditingSession.open(draft, author="writer") as session:
        backend = short_line_backend(model)
        Runner(session, backend, "Fix the typo.", max_commands=7, seed=1, keyframe_every=3).run()
        log = StreamLog(stream_dir_for(session.history))
    if isinstance(backend.state, HybridState):
        assert int(backend.state.seen) > 2 * WINDOW  # the attention ring has wrapped
    keyframed = short_line_backend(model)  # the last stored state (through bytes), then the records since
    since = log.chain(log.head, since_state=True)
    assert since[0].state_slot is not None
    keyframed.load(log.state(since[0]), [Chunk(log.chunk(r), r.model_bytes) for r in since[1:]], log.head.tokens)
    assert keyframed.state == backend.state
    assert torch.equal(keyframed.logits, backend.logits)


def test_rewind_and_continue_equals_a_fresh_run_that_stopped_there(tmp_path: Path, model) -> None:
    """Fresh: one backend runs up to the target version and never past it. Live: a copy of that
    session runs on past the target (new commands, new states stored), then the writer rewinds
    (or forks) to the target while the runner is open. The live model's mind must be the fresh
    one's: restored from stored bytes plus replay, it equals the state the fresh backend holds,
    and after the same writer event both hold the same state and logits, bit for bit."""
    how = "fork" if isinstance(model, RWKV7LM) else "rewind"  # both ways back, one per model (suite time)
    fresh_draft = _draft(tmp_path / "fresh")
    fresh = short_line_backend(model)
    commands, goal = 0, "Fix the typo."
    while True:  # one command at a time, until one made a version: the target, and stop there
        with EditingSession.open(fresh_draft, author="writer") as session:
            before = session.history.head().number
            Runner(session, fresh, goal, max_commands=1, seed=7, keyframe_every=3).run()
            target = session.history.head().number
        goal, commands = None, commands + 1
        if commands >= 3 and target != before:
            break
    shutil.copytree(tmp_path / "fresh", tmp_path / "live")
    live_draft = tmp_path / "live" / "draft.md"
    for attempt in range(10):  # on past the target, until a command made a version (looks make none)
        run_model(live_draft, model, None, max_commands=4, seed=11 + attempt, keyframe_every=3)
        with EditingSession.open(live_draft, author="writer") as session:
            if session.history.head().number > target:
                break
    with EditingSession.open(live_draft, author="writer") as session:
        assert session.history.head().number > target
        runner = Runner(session, short_line_backend(model), None, max_commands=0, seed=7, keyframe_every=3)
        runner.open()
        past_target = runner.backend.state.copy()
        # The runner hears the session's rewind or fork itself (it subscribes to the session).
        went_back = session.execute(f"rewind v{target}") if how == "rewind" else session.fork(target)
        runner.run()  # a budget of 0 commands: the writer's event is read, nothing sampled
        live = runner.backend
    assert not live.state.matches(past_target)
    fresh.feed(f"@user {went_back.line}\n@ok v{went_back.version}\n")  # the event the runner wrote
    assert live.state == fresh.state
    assert torch.equal(live.logits, fresh.logits)
    assert live_draft.read_text() == fresh_draft.read_text()


def test_a_granite_session_inside_its_window_stores_growing_states_and_rewinds(tmp_path: Path) -> None:
    """Within the attention window each stored state holds more keys and values than the last (the
    ring is not full yet), so the stream must store states of any size: at the default window a
    Granite-4.0-H session stopped at its second keyframe ("state of N bytes, but this stream
    stores M"). A resumed session replays from them bit for bit, and a rewind lands exactly."""
    model, _ = load_model(granite_folder(tmp_path / "granite"))  # the default window: 8,192 tokens
    draft = _draft(tmp_path / "draft")
    with EditingSession.open(draft, author="writer") as session:
        backend = short_line_backend(model)
        Runner(session, backend, "Fix the typo.", max_commands=6, seed=3, keyframe_every=2).run()
        log = StreamLog(stream_dir_for(session.history))
        keyframes = [log.record(n) for n in range(len(log)) if log.record(n).state_slot is not None]
        sizes = [len(log.state(r)) for r in keyframes]
        assert int(backend.state.seen) < model.new_state().window  # the ring never wrapped
        assert len(keyframes) >= 3 and sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes
        since = log.chain(log.head, since_state=True)
        resumed = short_line_backend(model)
        resumed.load(log.state(since[0]), [Chunk(log.chunk(r), r.model_bytes) for r in since[1:]], log.head.tokens)
        assert resumed.state == backend.state and torch.equal(resumed.logits, backend.logits)
        log.close()
    with EditingSession.open(draft, author="writer") as session:
        session.execute('insert $ "Written by hand."', author="writer")
        target = session.history.head().number
        runner = Runner(session, short_line_backend(model), None, max_commands=4, seed=5, keyframe_every=2)
        runner.open()  # the writer's version goes into the stream: the state there is the rewind's
        at_target, tokens = runner.backend.state_bytes(), runner.backend.stream_tokens
        runner.run()
    with EditingSession.open(draft, author="writer") as session:
        runner = Runner(session, short_line_backend(model), None, max_commands=0, seed=5, keyframe_every=2)
        runner.open()
        went_back = session.execute(f"rewind v{target}")
        runner.run()
        live = runner.backend
    expected = short_line_backend(model)
    expected.load(at_target, [Chunk(f"@user {went_back.line}\n@ok v{went_back.version}\n", 0)], tokens)
    assert live.state == expected.state and torch.equal(live.logits, expected.logits)
    with EditingSession.open(draft, author="writer") as session:
        reopened = StreamLog(stream_dir_for(session.history))
        assert len(reopened) > len(keyframes) and reopened.head.version == went_back.version  # nothing dropped
        reopened.close()
