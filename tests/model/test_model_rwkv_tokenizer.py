"""The RWKV World tokenizer (rwkv_vocab_v20230424.txt, as the fla-hub RWKV-7 folders ship it): ours
against the reference TRIE_TOKENIZER of BlinkDL's `rwkv` package, on the real vocabulary file that
package ships; and an RWKV-7 folder carrying it runs the editor under the llguidance mask."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from infitool_edit.model.tokenizer import RWKVWorldTokenizer

rwkv = pytest.importorskip("rwkv")

TEXTS = [
    "The quick brown fox jumps over the lazy dog.\n\n## Heading\n",
    '> replace 13 "Teh" "The"\n@ok v17 13:1\n@text 12-20\n12│## Introduction\n',
    "中文测试：模型只输出命令。 Émile écrit — «guillemets» … 🙂🚀 naïve café",
    "def f(x):\n\treturn x ** 2  # comment\r\n\x00\x7f",
    "",
]


@pytest.fixture(scope="module")
def vocab_file() -> Path:
    return Path(rwkv.__file__).parent / RWKVWorldTokenizer.FILE


@pytest.fixture(scope="module")
def relevant_vocab(vocab_file, tmp_path_factory) -> Path:
    """The lines of the real file whose token occurs in some test text (every single byte among
    them): longest-match tokenization of these texts can use no other token, so both tokenizers
    read this short file and give what they give on the whole (the reference takes ~20 s for it)."""
    texts = [text.encode("utf-8") for text in TEXTS]
    kept = []
    for line in vocab_file.read_text(encoding="utf-8").splitlines():
        token = RWKVWorldTokenizer.parse_line(line)[1]
        if len(token) == 1 or any(token in text for text in texts):
            kept.append(line)
    path = tmp_path_factory.mktemp("vocab") / RWKVWorldTokenizer.FILE
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(relevant_vocab):
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER

    return TRIE_TOKENIZER(str(relevant_vocab))


@pytest.fixture(scope="module")
def ours(relevant_vocab):
    return RWKVWorldTokenizer(relevant_vocab)


@pytest.mark.parametrize("text", TEXTS)
def test_encoding_equals_the_reference_trie_tokenizer(ours, reference, text):
    assert ours.encode(text) == reference.encode(text)
    assert ours.decode(ours.encode(text)) == text


def test_every_token_decodes_to_the_reference_bytes(ours, reference, vocab_file):
    assert len(reference.idx2token) > 500
    assert all(ours.token_bytes(i) == reference.idx2token[i] for i in reference.idx2token)
    assert ours.token_bytes(0) == b"" and ours.eos_id == 0
    assert RWKVWorldTokenizer(vocab_file).vocab_size == 65530  # the whole file: ids 1 … 65529


def test_a_malformed_vocabulary_line_is_one_line(tmp_path):
    (tmp_path / RWKVWorldTokenizer.FILE).write_text("1 '\\x00' 1\n2 __import__('os') 1\n")
    with pytest.raises(ValueError, match=r":2: not an RWKV vocabulary line") as error:
        RWKVWorldTokenizer(tmp_path)
    assert "\n" not in str(error.value)


def test_an_rwkv7_folder_with_the_world_vocabulary_runs_the_editor(tmp_path, vocab_file):
    """load_model picks the World tokenizer from the folder; the llguidance mask holds lines to the grammar."""
    pytest.importorskip("llguidance")
    from infitool_edit.agent.runner import Runner
    from infitool_edit.agent.ssm import SSMBackend, load_model
    from infitool_edit.commands import parse
    from infitool_edit.model.hf_folder import save_folder
    from infitool_edit.model.rwkv7 import RWKV7Config, RWKV7LM
    from infitool_edit.session.editing import EditingSession

    torch.manual_seed(0)
    config = RWKV7Config(vocab_size=65536, hidden_size=32, num_hidden_layers=1, head_dim=16, decay_low_rank_dim=16,
                         gate_low_rank_dim=16, a_low_rank_dim=16, v_low_rank_dim=16, intermediate_size=32)
    folder = save_folder(RWKV7LM(config), tmp_path / "rwkv7-world")
    shutil.copy(vocab_file, folder / RWKVWorldTokenizer.FILE)
    model, tokenizer = load_model(folder)
    assert isinstance(tokenizer, RWKVWorldTokenizer)
    draft = tmp_path / "draft.md"
    draft.write_text("# Notes\n\nTeh first line.\n")
    events: list = []
    with EditingSession.open(draft, author="writer") as session:
        Runner(session, SSMBackend(model, tokenizer=tokenizer, max_command_bytes=48), "Fix the typo.",
               emit=events.append, max_commands=1, seed=0).run()
    lines = [e.line for e in events if type(e).__name__ in ("CommandApplied", "CommandFailed")]
    assert lines
    for line in lines:
        if len(line.encode()) < 48:  # a line cut at the byte budget is reported, not parsed
            parse(line)
