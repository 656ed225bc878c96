"""The built-in backend: a Mamba model from ``infitool_edit.model`` reading
the stream recurrently and writing commands under the grammar mask.

Runtime text (prompt, observations, writer events) is prefilled through
``forward`` in one call per piece; the model's own line goes through
``step`` one token at a time. Replaying stored chunks repeats exactly those
calls, so a state rebuilt from a keyframe is bit for bit the state the live
run had — which is what makes rewind-and-continue equal a fresh run.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from infitool_edit.errors import InfitoolError
from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, StateMismatch, Turn, check_quantize
from infitool_edit.agent.constrain import (
    MAX_COMMAND_BYTES,
    BpeLineConstraint,
    LineConstraint,
    byte_mask_table,
    llguidance_tokenizer,
)
import infitool_edit.agent.default_model as shipped
from infitool_edit.model import MambaConfig, MambaLM, State, StateError
from infitool_edit.model.checkpoint import load_checkpoint
from infitool_edit.model.memory import on_huge_pages
from infitool_edit.model.quantize import QUANTIZERS
from infitool_edit.agent.copy_prior import CONTEXT_BYTES, CopyPrior
from infitool_edit.agent.held_back import Doubt, cut_at_limit, unsure_of_address, unsure_of_goal
from infitool_edit.model.sampling import Decoding, sample_token
from infitool_edit.model.tokenizer import ByteTokenizer, HFTokenizer, RWKVWorldTokenizer

DEFAULT_MODEL_NAME = "random-tiny-byte"
"""The default when no trained model is installed in model/weights/: random
weights, built the same way from the same seed on every machine."""

BUILTIN_MODEL_NAME = "builtin-byte"
"""The trained model shipped in model/weights/ (the author "model:builtin-byte")."""

VERB_ENDS = frozenset(b" \n")  # the bytes that end a command's verb


class ModelError(InfitoolError, ValueError):
    """A model that cannot be used as a backend (one line)."""


def random_tiny_model(seed: int = 0, *, hidden_size: int = 64, layers: int = 2) -> MambaLM:
    """A byte-level Mamba with random weights, identical for identical
    arguments: the default model, and the model of tests and benchmarks."""
    config = MambaConfig(
        vocab_size=ByteTokenizer().vocab_size,
        hidden_size=hidden_size,
        state_size=8,
        num_hidden_layers=layers,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = MambaLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


def default_model(quantize: str | None = None) -> tuple[MambaLM, str, Decoding]:
    """The model used when none is given, its backend name and how it samples: the trained
    checkpoint in model/weights/ if one is installed (``shipped.has_trained_default``) with its
    ``generation_config.json``, else ``random_tiny_model()`` sampled plainly. ``quantize``: as
    ``load_model``'s."""
    check_quantize(quantize)
    if shipped.has_trained_default():
        folder = shipped.weights_dir()
        model = on_huge_pages(load_checkpoint(folder, quantize=quantize))
        return model, quantized_name(BUILTIN_MODEL_NAME, quantize), Decoding.from_folder(folder)
    model = random_tiny_model() if quantize is None else QUANTIZERS[quantize](random_tiny_model(), in_place=True)
    return on_huge_pages(model), quantized_name(DEFAULT_MODEL_NAME, quantize), Decoding()


def quantized_name(name: str, quantize: str | None) -> str:
    """The backend's name (the versions' author "model:NAME") says how its weights were read."""
    return name if quantize is None else f"{name}+{quantize}"


Tokenizer = ByteTokenizer | HFTokenizer | RWKVWorldTokenizer


def load_model(folder: Path | str, *, attention_window: int | None = None,
               quantize: str | None = None) -> tuple[MambaLM, Tokenizer]:
    """A checkpoint folder as a backend model and its tokenizer: the folder's ``tokenizer.json``
    (a pretrained BPE checkpoint such as mamba-130m-hf), its ``rwkv_vocab_v20230424.txt`` (the RWKV
    World tokenizer of the fla-hub RWKV-7 folders), else bytes. ``attention_window``: the tokens a
    Granite-4.0-H model's attention layers keep (default 8,192); other models have none to bound.
    ``quantize``: ``"int8"`` or ``"q4"`` to decode with int8 or 4-bit weights, each layer
    quantized as it is read (``load_checkpoint``). The weights end on 2 MB pages, which a token
    streams 4-8% faster (model/memory.py)."""
    check_quantize(quantize)
    folder = Path(folder).expanduser()
    model = load_checkpoint(folder, quantize=quantize,
                            **({} if attention_window is None else {"attention_window": attention_window}))
    on_huge_pages(model)
    if (folder / "tokenizer.json").exists():
        try:
            tokenizer: Tokenizer = HFTokenizer(folder)
        except ValueError as error:
            raise ModelError(str(error)) from None
        if tokenizer.eos_id is None:
            raise ModelError(f"{folder}: tokenizer.json has no end-of-text token (<|endoftext|>, </s> or <eos>)")
    elif (folder / RWKVWorldTokenizer.FILE).exists():  # the fla-hub RWKV-7 folders
        try:
            tokenizer = RWKVWorldTokenizer(folder)
        except ValueError as error:
            raise ModelError(str(error)) from None
    else:
        tokenizer = ByteTokenizer()
    if model.config.vocab_size < tokenizer.vocab_size:
        kind = {HFTokenizer: "its tokenizer.json", RWKVWorldTokenizer: f"its {RWKVWorldTokenizer.FILE}"}.get(
            type(tokenizer), "the byte tokenizer")
        raise ModelError(
            f"{folder}: the checkpoint has {model.config.vocab_size} token embeddings, "
            f"{kind} needs {tokenizer.vocab_size}"
        )
    return model, tokenizer


class _LineText:
    """The text of a command line being sampled, piece by piece as its tokens are decided: a
    byte token may end inside a UTF-8 character, a BPE token inside one or past several."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._bytes = codecs.getincrementaldecoder("utf-8")() if isinstance(tokenizer, ByteTokenizer) else None
        self._ids: list[int] = []
        self._shown = 0
        self.byte_count = 0

    def add(self, token: int) -> str:
        if self._bytes is not None:
            piece = self._bytes.decode(bytes([token]))
        else:
            self._ids.append(token)
            text = self.tokenizer.decode(self._ids)
            if text.endswith("\ufffd"):  # the token ends inside a character: wait for the rest
                return ""
            piece, self._shown = text[self._shown :], len(text)
        self.byte_count += len(piece.encode("utf-8"))
        return piece


def _chosen_p(logits: torch.Tensor, token: int) -> float:
    """The probability ``token`` had in the distribution it was chosen from."""
    return float(torch.softmax(logits.float(), -1)[token])


class SSMBackend:
    def __init__(
        self,
        model: MambaLM,
        *,
        tokenizer: Tokenizer | None = None,
        name: str = DEFAULT_MODEL_NAME,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_command_bytes: int = MAX_COMMAND_BYTES,
        copy_prior: float = 0.0,
        min_address_p: float = 0.0,
        min_plan_p: float = 0.0,
    ) -> None:
        """``tokenizer``: bytes by default; an ``HFTokenizer`` (a BPE checkpoint) masks through
        llguidance, which holds lines to the grammar but not to the draft (line numbers within
        it, search strings that occur in it): those are the byte-level mask's alone.
        ``copy_prior``: the strength of agent/copy_prior.py's prior (byte-level models only).
        ``min_address_p``: an edit whose place in the draft had a byte chosen with a lower
        probability is doubted (``doubt``, agent/held_back.py); 0: never (byte-level models only,
        as only their places are held to the draft). A line cut at ``max_command_bytes`` is
        doubted whatever this is. ``min_plan_p``: the first command since the goal was given is
        doubted when its verb was chosen with a lower probability (a goal the model does not
        know); 0: never (byte-level models only, where a verb is its bytes up to a space)."""
        self.model = model
        self.name = name
        self.temperature = temperature
        self.top_p = top_p
        self.tokenizer = tokenizer or ByteTokenizer()
        self.max_command_bytes = max_command_bytes
        if isinstance(self.tokenizer, ByteTokenizer):
            self.mask_table = byte_mask_table(model.config.vocab_size, max_command_bytes)
            self._ll_tokenizer = None
        else:
            try:
                if isinstance(self.tokenizer, RWKVWorldTokenizer):
                    self._ll_tokenizer = self.tokenizer.llguidance()
                else:
                    self._ll_tokenizer = llguidance_tokenizer(self.tokenizer.to_json(), eos_token=self.tokenizer.eos_id)
            except ImportError:
                raise ModelError(
                    f"{name}: a BPE checkpoint needs llguidance: pip install 'infitool-edit[bpe]'"
                ) from None
        byte_level = isinstance(self.tokenizer, ByteTokenizer)
        self.copy_prior = CopyPrior(copy_prior) if copy_prior and byte_level else None
        self.min_address_p = min_address_p if byte_level else 0.0
        self.min_plan_p = min_plan_p if byte_level else 0.0
        self._doubt: Doubt | None = None  # about the last line written (`doubt`)
        # The recurrent state is the whole memory; the copy prior reads the stream's end too.
        self.context_chars = CONTEXT_BYTES if self.copy_prior else 0
        self._device = model.embeddings.weight.device
        self.state = model.new_state()
        self.logits: torch.Tensor | None = None  # (vocab,) after the last token read (within a line: masked)
        self._tokens = 0
        self._prefix_ids = self.tokenizer.encode(MODEL_PREFIX)

    @property
    def stream_tokens(self) -> int:
        return self._tokens

    @torch.no_grad()
    def feed(self, text: str) -> None:
        ids = self.tokenizer.encode(text)
        if not ids:
            return
        if self.copy_prior:
            self.copy_prior.read(text.encode("utf-8"))
        logits, _ = self.model(torch.tensor([ids], device=self._device), self.state, last_only=True)
        self.logits = logits[0]
        self._tokens += len(ids)

    @torch.no_grad()
    def command(self, turn: Turn) -> Iterator[str]:
        generator = torch.Generator(device=self._device).manual_seed(turn.seed)
        if self._ll_tokenizer is None:
            constraint = LineConstraint(self.mask_table, turn.line_count, turn.read_draft, turn.read_headings)
        else:
            constraint = BpeLineConstraint(self._ll_tokenizer, self.model.config.vocab_size)
        # Each step reads one token and hands the model the mask for the next (the constraint
        # knows it once the token is decided), which the fused step adds to the logits it
        # computes: `self.logits` comes back masked, and sampling adds nothing.
        if self.copy_prior:
            self.copy_prior.start_line(turn.read_draft)
        for token in self._prefix_ids[:-1]:
            self._step(token)
        bias, forced = constraint.mask()
        self._step(self._prefix_ids[-1], bias)
        yield MODEL_PREFIX
        line = _LineText(self.tokenizer)
        # After a held line the line is the doubt's ending, forced byte by byte (held_back.py).
        fits = self._ll_tokenizer is None and turn.ending and len(turn.ending) < self.max_command_bytes
        ending = list(turn.ending) if fits else []
        address_p = 1.0  # the lowest probability a byte of the line's place was chosen with
        # The first command's verb (its bytes up to a space or the newline) and the probability
        # it was chosen with, when that is asked (`min_plan_p`).
        verb, verb_p, in_verb = bytearray(), 1.0, bool(turn.opens_goal and self.min_plan_p and not ending)
        self._doubt = None
        while not constraint.finished:
            if self._ll_tokenizer is not None and line.byte_count >= self.max_command_bytes:
                # Only the byte mask counts bytes; under llguidance a line can run on (a quote that
                # never closes). End it here: the runner reports the cut line as an error.
                for token in self.tokenizer.encode("\n"):
                    self._step(token)
                yield "\n"
                return
            if ending:
                token = ending.pop(0)  # a byte the grammar allows: ENDING is a command
            elif forced >= 0:
                token = forced
            else:
                argument = constraint.open_argument if self.copy_prior else None
                logits = (self.copy_prior.apply(self.logits, *argument, search_string=constraint.in_search_string)
                          if argument else self.logits)
                token = sample_token(logits, temperature=self.temperature, top_p=self.top_p, generator=generator)
                if self.min_address_p and constraint.in_address:
                    address_p = min(address_p, _chosen_p(logits, token))
                if in_verb and token not in VERB_ENDS:
                    verb_p *= _chosen_p(logits, token)
            in_verb = in_verb and token not in VERB_ENDS
            if in_verb:
                verb.append(token)
            constraint.advance(token)
            bias, forced = (None, -1) if constraint.finished else constraint.mask()
            self._step(token, bias)
            yield line.add(token)
        if verb_p < self.min_plan_p:
            self._doubt = unsure_of_goal(verb.decode("utf-8", "replace"), verb_p)
        elif address_p < self.min_address_p:
            self._doubt = unsure_of_address(address_p)
        elif constraint.reached_limit:
            self._doubt = cut_at_limit(self.max_command_bytes)

    def doubt(self) -> Doubt | None:
        return self._doubt

    def snapshot(self) -> tuple[State, torch.Tensor | None, int, bytes]:
        recent = self.copy_prior.recent if self.copy_prior else b""
        return self.state.copy(), None if self.logits is None else self.logits.clone(), self._tokens, recent

    def restore(self, mark: tuple[State, torch.Tensor | None, int, bytes]) -> None:
        state, logits, self._tokens, recent = mark
        self.state = state.copy()
        self.logits = None if logits is None else logits.clone()
        if self.copy_prior:
            self.copy_prior.recent = recent

    def state_bytes(self) -> bytes:
        """The recurrent state and the logits it leads to (so a reopened
        session needs no token to be read again before it can sample)."""
        state = self.state.to_bytes()
        logits = self.logits if self.logits is not None else torch.zeros(self.model.config.vocab_size)
        return struct.pack("<q", len(state)) + state + logits.float().cpu().numpy().tobytes()

    @torch.no_grad()
    def load(self, state: bytes | None, replay: Sequence[Chunk], tokens: int, context: str = "") -> None:
        if state is None:
            self.state, self.logits = self.model.new_state(), None
        else:
            self.state = self._stored_state(state)
            logits = state[len(state) - 4 * self.model.config.vocab_size :]
            self.logits = torch.frombuffer(bytearray(logits), dtype=torch.float32).to(self._device)
        for chunk in replay:
            data = chunk.text.encode("utf-8")
            for token in self._model_tokens(data[: chunk.model_bytes]):
                self._step(token)
            self.feed(data[chunk.model_bytes :].decode("utf-8"))
        self._tokens = tokens
        if self.copy_prior:  # the stream's end as the live backend read it (replay included)
            self.copy_prior.recent = context.encode("utf-8")[-CONTEXT_BYTES:]

    def _model_tokens(self, written: bytes) -> list[int]:
        """The tokens to step again for what the model wrote: its bytes, exactly as sampled, for
        a byte-level model. A BPE model's sampled segmentation is not stored; its text is encoded
        again (the prefix apart, as it was stepped), which can segment a line differently than
        the sampling did, so its replayed state can differ slightly from the live one."""
        if isinstance(self.tokenizer, ByteTokenizer):
            return list(written)
        text = written.decode("utf-8", errors="replace")
        if text.startswith(MODEL_PREFIX):
            return self._prefix_ids + self.tokenizer.encode(text[len(MODEL_PREFIX) :])
        return self.tokenizer.encode(text)

    def _stored_state(self, blob: bytes) -> State:
        another = StateMismatch(
            f"this session was run by another backend than {self.name}: resume it with the same model or script"
        )
        if len(blob) < 8:
            raise another
        (size,) = struct.unpack_from("<q", blob)
        try:
            # The model's own kind of state: a `State`, or Granite's `HybridState` with its attention window.
            state = type(self.state).from_bytes(blob[8 : 8 + size], device=self._device)
        except StateError:
            raise another from None
        if not state.fits(self.model.config) or len(blob) != 8 + size + 4 * self.model.config.vocab_size:
            raise another
        return state

    def _step(self, token: int, mask: torch.Tensor | None = None) -> None:
        """Read ``token``; ``mask``: the grammar's bias row for the token after it, added to
        the logits by the model's step (inside the fused CPU step where it runs)."""
        self.logits = self.model.step(torch.tensor([token], device=self._device), self.state, mask)[0]
        self._tokens += 1
        if self.copy_prior and token < 256:  # a byte (the byte tokenizer's specials are above)
            self.copy_prior.read(bytes([token]))
