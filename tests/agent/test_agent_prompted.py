"""Prompted mode: a checkpoint with a chat template reads the session as a conversation.

The templates are real ones (tests/fixtures/chat_templates/SOURCES.md); every rendering is
compared with transformers' own apply_chat_template on the same messages, through a tokenizer
object transformers accepts (a tiny BPE tokenizer.json built here with `tokenizers`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("llguidance")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from infitool_edit.agent.chat_template import ChatTemplate, ChatTemplateError  # noqa: E402
from infitool_edit.agent.headless import make_backend  # noqa: E402
from infitool_edit.agent.prompted import (  # noqa: E402
    EXAMPLES,
    WORKED_TURNS,
    ChatTurns,
    PromptedBackend,
    opening_messages,
    system_prompt,
)
from infitool_edit.agent.ssm import SSMBackend  # noqa: E402
from infitool_edit.commands import grammar, parse  # noqa: E402
from infitool_edit.agent.constrain import MAX_COMMAND_BYTES  # noqa: E402
from infitool_edit.commands.fsm import command_dfa  # noqa: E402
from infitool_edit.model import MambaConfig, MambaLM, save_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "tests" / "fixtures" / "chat_templates"
# Templates that rewrite earlier turns (not prefix-stable): prompted mode refuses them in one line.
REWRITING = {"mistral-v3-instruct.jinja"}
FIXTURES = sorted(path.name for path in TEMPLATES.glob("*.jinja") if path.name not in REWRITING)
SPECIAL = {  # each template's own special tokens (its model's tokenizer_config.json names them so)
    "granite-4.0-h.jinja": {"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>"},
    "rwkv7-g1.jinja": {"bos_token": "<|rwkv_tokenizer_end_of_text|>", "eos_token": "\n\n"},
    # Falcon3's tokenizer: <|endoftext|> (id 11) ends a turn; the template never writes a bos.
    "falcon3-instruct.jinja": {"eos_token": "<|endoftext|>"},
    "mistral-v3-instruct.jinja": {"bos_token": "<s>", "eos_token": "</s>"},
}
ADDED = ["<|endoftext|>", "<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>", "<|rwkv_tokenizer_end_of_text|>",
         "<|system|>", "<|user|>", "<|assistant|>", "<s>", "</s>", "[INST]", "[/INST]"]

# A session as the runner feeds it: the opening user turn, commands, observations, a writer's
# event right after an observation (two user turns in a row).
SESSION = [
    ("user", "@goal Tighten the introduction.\n@view draft.md, 3 lines, cursor 1:1\n@text 1-3 of 3\n1│# A\n2│\n3│Teh b."),
    ("assistant", 'replace 3 "Teh" "The"'),
    ("user", "@ok v2 3:4"),
    ("user", '@user insert 2:1 "x"\n@ok v3 2:2'),
    ("assistant", "outline"),
    ("user", '@outline 1 "# A"'),
    ("assistant", 'done "Fixed it."'),
]


def docs_command_lines() -> set[str]:
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    return {line for block in re.findall(r"```commands\n(.*?)```", text, re.S) for line in block.splitlines()}


def test_the_system_prompt_is_the_grammar_with_an_example_of_every_verb_from_the_docs():
    prompt = system_prompt()
    documented = docs_command_lines()
    assert set(EXAMPLES) == set(grammar.VERBS)
    for verb, example in EXAMPLES.items():
        assert example in documented, f"{example!r} is not in docs/commands.md"
        assert type(parse(example)) in {form.command for form in grammar.FORMS_BY_VERB[verb]}
        assert example in prompt
    for form in grammar.FORMS:
        assert form.usage in prompt
    for _, command in WORKED_TURNS:
        parse(command)
    assert len(prompt) < 2000  # a few hundred tokens: seconds to prefill on a CPU


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=ADDED,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [system_prompt(), *EXAMPLES.values(), *(text for turn in WORKED_TURNS for text in turn)]
    tokenizer.train_from_iterator(corpus * 4, trainer)
    return tokenizer


def transformers_tokenizer(bpe: Tokenizer, name: str):
    transformers = pytest.importorskip("transformers")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, chat_template=(TEMPLATES / name).read_text(encoding="utf-8"), **SPECIAL[name])


@pytest.mark.parametrize("name", FIXTURES)
def test_turn_by_turn_pieces_add_up_to_transformers_rendering(name, bpe):
    """Prefix-stable: the opening, then each turn's piece (a user turn after either role; an
    assistant turn as header + command + end), concatenated, is exactly transformers'
    apply_chat_template of the whole conversation, at every turn."""
    template = ChatTemplate((TEMPLATES / name).read_text(encoding="utf-8"), SPECIAL[name], origin=name)
    theirs = transformers_tokenizer(bpe, name)
    turns = ChatTurns(template)
    fed, last, messages = turns.opening, "assistant", []
    for role, content in SESSION:
        if role == "user":
            fed += turns.user(content, after=last)
        else:
            fed += turns.header + content + turns.end
        last = role
        messages.append({"role": role, "content": content})
        expected = theirs.apply_chat_template(opening_messages() + messages, tokenize=False)
        assert fed == expected
        assert turns.render(messages) == expected


def test_mistrals_v3_template_renders_as_transformers_does_and_is_refused_as_rewriting(bpe):
    """Mamba-Codestral's instruct format (Mistral tokenizer v3, [INST] … [/INST]): the template moves
    the system message into the LAST user turn and demands strict user/assistant alternation, so
    each new user turn rewrites the text before it. Rendering still equals transformers' on
    alternating conversations; ChatTurns refuses it explicitly, in one line."""
    name = "mistral-v3-instruct.jinja"
    template = ChatTemplate((TEMPLATES / name).read_text(encoding="utf-8"), SPECIAL[name], origin=name)
    theirs = transformers_tokenizer(bpe, name)
    alternating = [message for message in SESSION if message != SESSION[3]]  # drop the second user turn in a row
    messages = opening_messages()
    for role, content in alternating:
        messages = messages + [{"role": role, "content": content}]
        assert template.render(messages) == theirs.apply_chat_template(messages, tokenize=False)
    with pytest.raises(ChatTemplateError, match="rewrites earlier turns .*not prefix-stable") as error:
        ChatTurns(template)
    assert "\n" not in str(error.value) and name in str(error.value)


def test_a_template_that_rewrites_earlier_turns_is_refused_in_one_line():
    rewriting = ("{% for m in messages %}{% if loop.last %}[last] {% endif %}{{ m['role'] }}: {{ m['content'] }}\n"
                 "{% endfor %}")
    with pytest.raises(ChatTemplateError, match="rewrites earlier turns .*not prefix-stable") as error:
        ChatTurns(ChatTemplate(rewriting, origin="rewriting.jinja"))
    assert "\n" not in str(error.value)


def tiny_instruct_checkpoint(folder: Path, bpe: Tokenizer, template_name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = MambaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, state_size=4, num_hidden_layers=2)
    save_checkpoint(MambaLM(config).eval(), folder)
    bpe.save(str(folder / "tokenizer.json"))
    settings = {"chat_template": (TEMPLATES / template_name).read_text(encoding="utf-8"), **SPECIAL[template_name]}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def granite_folder(tmp_path_factory, bpe) -> Path:
    return tiny_instruct_checkpoint(tmp_path_factory.mktemp("instruct") / "tiny-granite-chat", bpe, "granite-4.0-h.jinja")


def test_a_folder_with_a_template_gets_prompted_mode_and_one_without_keeps_the_raw_stream(granite_folder, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("INFITOOL_EDIT_PROMPT_STATES", str(tmp_path / "states"))
    assert isinstance(make_backend(model=granite_folder), PromptedBackend)
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (raw / name).write_bytes((granite_folder / name).read_bytes())
    assert type(make_backend(model=raw)) is SSMBackend


def test_the_opening_state_is_cached_and_reused(granite_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("INFITOOL_EDIT_PROMPT_STATES", str(tmp_path / "states"))
    first = make_backend(model=granite_folder)
    cached = list((tmp_path / "states").glob("*.state"))
    assert len(cached) == 1
    second = make_backend(model=granite_folder)
    assert second.state == first.state and torch.equal(second.logits, first.logits)


def test_run_edits_end_to_end_in_prompted_mode(granite_folder, tmp_path, monkeypatch):
    """`infitool-edit run draft.md --model DIR` (in process: the CLI's own Typer app)."""
    from typer.testing import CliRunner

    from infitool_edit.cli import app

    draft = tmp_path / "work" / "draft.md"
    draft.parent.mkdir()
    draft.write_text("# Notes\n\nTeh lamp was lit.\n", encoding="utf-8")
    monkeypatch.setenv("INFITOOL_EDIT_PROMPT_STATES", str(tmp_path / "states"))
    result = CliRunner().invoke(app, ["run", str(draft), "--model", str(granite_folder), "--goal", "Fix the typo.",
                                      "--max-commands", "3", "--attention-window", "64"])
    assert result.exit_code == 0, result.output
    assert result.output.count("> ") == 3
    stream = next(draft.parent.rglob("stream.txt"))
    text = stream.read_text(encoding="utf-8")
    assert text.startswith("@goal Fix the typo.\n")  # the stream on disk stays the raw stream
    model_lines = [line[2:] for line in text.splitlines() if line.startswith("> ")]
    assert len(model_lines) == 3
    for line in model_lines:  # the mask held every assistant turn to one command
        data = line.encode("utf-8")
        if len(data) < MAX_COMMAND_BYTES:
            parse(line)
        else:  # a BPE model's line is cut at the cap (the runner reports it): still a command's start
            assert command_dfa().walk(data)[1] == len(data)
    assert list((tmp_path / "states").glob("*.state"))
    # resume replays the stored (raw) stream through the same rendering and writes on
    resumed = CliRunner().invoke(app, ["resume", str(draft), "--model", str(granite_folder), "--max-commands", "1"])
    assert resumed.exit_code == 0, resumed.output
    assert len([line for line in stream.read_text(encoding="utf-8").split("\n") if line.startswith("> ")]) == 4


def test_replaying_a_prompted_stream_rebuilds_the_live_state_exactly(tmp_path, monkeypatch):
    """A byte-level model with a template: loading the stored raw chunks (resume, rewind) goes
    through the same pieces and the same forward/step calls, so the state is bit for bit the live one."""
    from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, Turn
    from infitool_edit.model.tokenizer import ByteTokenizer

    monkeypatch.setenv("INFITOOL_EDIT_PROMPT_STATES", str(tmp_path / "states"))
    # One thread: the fused step's threaded sums are not bit-reproducible from run to run (the raw
    # SSMBackend's live runs differ in the last bits too with several threads).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        check_replay(ByteTokenizer, tmp_path)
    finally:
        torch.set_num_threads(threads)


def check_replay(ByteTokenizer, tmp_path) -> None:
    from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, Turn

    torch.manual_seed(0)
    model = MambaLM(MambaConfig(vocab_size=ByteTokenizer().vocab_size, hidden_size=32, state_size=4,
                                num_hidden_layers=2)).eval()
    template = ChatTemplate((TEMPLATES / "rwkv7-g1.jinja").read_text(encoding="utf-8"), SPECIAL["rwkv7-g1.jinja"])

    def backend():
        return PromptedBackend(model, template=template)

    live = backend()
    prompt = "@goal Fix it.\n@view draft.md, 3 lines, cursor 1:1\n@text 1-3 of 3\n1│# A\n2│\n3│Teh b.\n"
    live.feed(prompt)
    chunks = [Chunk(prompt, 0)]
    for seed in range(3):
        line = "".join(live.command(Turn(line_count=3, head_version=1, seed=seed, read_draft=lambda: "# A\n\nTeh b.\n")))
        assert line.startswith(MODEL_PREFIX) and line.endswith("\n")
        parse(line[len(MODEL_PREFIX):-1])
        observation = "@error column 1: no\n"
        live.feed(observation)
        chunks.append(Chunk(line + observation, len(line.encode("utf-8"))))
    replayed = backend()
    replayed.load(None, chunks, live.stream_tokens)
    assert replayed.state == live.state and torch.equal(replayed.logits, live.logits)
    # and from a stored state midway (a keyframe), the rest replayed
    midway = backend()
    midway.load(None, chunks[:2], 0)
    blob = midway.state_bytes()
    resumed = backend()
    resumed.load(blob, chunks[2:], live.stream_tokens)
    assert resumed.state == live.state and torch.equal(resumed.logits, live.logits)


def test_attention_window_reaches_a_granite_model_from_the_command_line(tmp_path):
    """`--attention-window N` on run/resume/edit is the window load_model builds Granite with."""
    from typer.testing import CliRunner

    from infitool_edit.cli import app
    from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM
    from infitool_edit.model.hf_folder import save_folder

    config = GraniteHybridConfig(vocab_size=259, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, shared_intermediate_size=16, num_local_experts=0,
                                 layer_types=["mamba", "attention"], mamba_n_heads=8, mamba_d_head=8,
                                 mamba_d_state=8, mamba_chunk_size=8)
    torch.manual_seed(0)
    folder = save_folder(GraniteHybridLM(config).eval(), tmp_path / "granite")
    assert make_backend(model=folder, attention_window=16).model.config.attention_window == 16
    draft = tmp_path / "draft.md"
    draft.write_text("# A\n\nb.\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(draft), "--model", str(folder), "--goal", "g", "--max-commands", "1",
                                      "--attention-window", "16"])
    assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(app, ["run", str(draft), "--model", str(folder), "--goal", "g", "--attention-window", "0"])
    assert refused.exit_code != 0


def test_rwkv_g1s_end_of_text_marker_is_read_as_token_zero(tmp_path, monkeypatch):
    """RWKV-7 G1's template opens with <|rwkv_tokenizer_end_of_text|>: the World tokenizer (bytes
    only) would spell it out; prompted mode puts in token 0, as fla's tokenizer maps it."""
    rwkv = pytest.importorskip("rwkv")
    from infitool_edit.agent.prompted import RWKV_END_OF_TEXT
    from infitool_edit.model.tokenizer import RWKVWorldTokenizer

    monkeypatch.setenv("INFITOOL_EDIT_PROMPT_STATES", str(tmp_path / "states"))
    tokenizer = RWKVWorldTokenizer(Path(rwkv.__file__).parent)
    model = MambaLM(MambaConfig(vocab_size=65536, hidden_size=16, state_size=2, num_hidden_layers=1)).eval()
    template = ChatTemplate((TEMPLATES / "rwkv7-g1.jinja").read_text(encoding="utf-8"), SPECIAL["rwkv7-g1.jinja"])
    seen = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, *a, **k: (seen.append(ids[0].tolist()), original(ids, *a, **k))[1])
    backend = PromptedBackend(model, template=template, tokenizer=tokenizer)
    assert backend.turns.opening.startswith(RWKV_END_OF_TEXT)
    assert seen[0][0] == 0 and seen[0][1:] == tokenizer.encode(backend.turns.opening[len(RWKV_END_OF_TEXT):])


def tiny_model(kind: str):
    """A tiny byte-level model of each architecture prompted mode runs: Mamba-1, Mamba-2, RWKV-7 and
    Granite-4.0-H (Mamba-2 with an attention layer whose KV window is part of the state)."""
    from infitool_edit.model import Mamba2Config, Mamba2LM
    from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM
    from infitool_edit.model.rwkv7 import RWKV7Config, RWKV7LM
    from infitool_edit.model.tokenizer import ByteTokenizer

    vocab = ByteTokenizer().vocab_size
    torch.manual_seed(0)
    if kind == "mamba":
        return MambaLM(MambaConfig(vocab_size=vocab, hidden_size=32, state_size=4, num_hidden_layers=2))
    if kind == "mamba2":
        return Mamba2LM(Mamba2Config(vocab_size=vocab, hidden_size=32, state_size=16, num_hidden_layers=2,
                                     expand=2, num_heads=4, head_dim=16, n_groups=2, chunk_size=8))
    if kind == "rwkv7":
        return RWKV7LM(RWKV7Config(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, head_dim=16,
                                       decay_low_rank_dim=8, gate_low_rank_dim=8, a_low_rank_dim=8,
                                       v_low_rank_dim=8, intermediate_size=64))
    return GraniteHybridLM(GraniteHybridConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        shared_intermediate_size=16, num_local_experts=0, layer_types=["mamba", "attention"], mamba_n_heads=8,
        mamba_d_head=8, mamba_d_state=8, mamba_chunk_size=8, attention_window=4096))


@pytest.mark.parametrize("kind", ["mamba", "mamba2", "rwkv7", "granite"])
@torch.no_grad()
def test_a_turn_is_prefilled_in_one_forward_call_and_equals_stepping_its_tokens(kind, monkeypatch):
    """Prefill reads a whole turn (the opening, a user turn, the assistant header) through the model's
    chunked `forward` in one call, never token by token through `step`; the state and logits it
    leaves equal those of stepping the same tokens one at a time (1e-4, fp32). The plain PyTorch step
    (the fused C step's twin, checked against it in tests/model): building the C step costs seconds."""
    monkeypatch.setenv("INFITOOL_CPU_STEP", "off")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: on a busy machine, waiting for a second thread costs ms per op
    try:
        check_one_forward_per_turn(tiny_model(kind).eval(), monkeypatch)
    finally:
        torch.set_num_threads(threads)


def check_one_forward_per_turn(model, monkeypatch) -> None:
    template = ChatTemplate((TEMPLATES / "falcon3-instruct.jinja").read_text(encoding="utf-8"),
                            SPECIAL["falcon3-instruct.jinja"])
    calls = {"forward": [], "step": 0}
    forward, step = model.forward, model.step
    monkeypatch.setattr(model, "forward", lambda ids, *a, **k: (calls["forward"].append(ids.shape[1]),
                                                                forward(ids, *a, **k))[1])
    monkeypatch.setattr(model, "step", lambda *a, **k: (calls.__setitem__("step", calls["step"] + 1), step(*a, **k))[1])
    backend = PromptedBackend(model, template=template)
    assert calls["step"] == 0 and len(calls["forward"]) == 1  # the opening: one call
    opened = backend.state.copy()
    turn = SESSION[0][1]
    backend.feed(turn)
    piece = backend.turns.user(turn, after="assistant")
    assert calls["step"] == 0 and calls["forward"][1:] == [len(piece.encode("utf-8"))]  # the turn: one call

    stepped = opened
    for token in backend.tokenizer.encode(piece):
        logits = step(torch.tensor([token]), stepped)[0]
    assert backend.state.matches(stepped, atol=1e-4)
    torch.testing.assert_close(backend.logits, logits, atol=1e-4, rtol=1e-4)
