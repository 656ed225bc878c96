"""Prompted mode: an instruct checkpoint reads the session as a conversation in its own chat template.

A checkpoint folder with a chat template (``chat_template.jinja``, or ``chat_template`` in
``tokenizer_config.json``) is an instruct model: it was never trained on the raw stream
(``@goal …``, ``> command``). So the runtime renders the session as the conversation the model
was tuned on:

- a system message teaching the command language, generated from the one grammar
  (``commands/grammar.py``: every form's usage line) with one example per verb taken from
  ``docs/commands.md`` (a test proves each is in that page and parses), then a few worked turns;
- the goal, each observation and each writer event as a user turn (the raw stream's text, which
  the system message explains);
- each command line as an assistant turn: the template's assistant header, the command sampled
  under the grammar mask, then the template's end of turn (in place of the line's newline).

The recurrent state reads the conversation once, piece by piece, so each piece must extend the
text read so far exactly. A piece is computed as the difference between two renderings (the
conversation with and without the new message, on a short stand-in history with the same
roles), and :class:`ChatTurns` refuses, with one line, a template whose rendering of a
conversation is not a prefix of its rendering of that conversation plus one more message
(templates that rewrite earlier turns). The stream on disk stays the raw stream; only what the
model reads changes, so rewind, fork and resume replay it through this same rendering.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from infitool_edit.agent.backend import MODEL_PREFIX, Turn
from infitool_edit.agent.chat_template import ChatTemplate, ChatTemplateError
from infitool_edit.agent.constrain import BpeLineConstraint, LineConstraint
from infitool_edit.agent.ssm import SSMBackend, _LineText
from infitool_edit.commands import grammar
from infitool_edit.model.sampling import sample_token
from infitool_edit.model.tokenizer import RWKVWorldTokenizer

RWKV_END_OF_TEXT = "<|rwkv_tokenizer_end_of_text|>"

# One example per verb, each a line of docs/commands.md (tests/agent/test_agent_prompted.py checks
# that each is in that page's `commands` blocks, parses, and that every verb has one).
EXAMPLES = {
    "insert": 'insert 12:5 "very "',
    "delete": "delete 12-14",
    "replace": 'replace 5 "Teh" "The"',
    "move": "move #winter #summer",
    "jump": "jump #the-lighthouse-keepers-year/winter",
    "find": 'find "log books"',
    "check": "check",
    "fix": "fix 12",
    "outline": "outline",
    "read": "read 12-40",
    "note": 'note "conclusion is one line; ask before expanding it"',
    "notes": "notes",
    "goal": "goal",
    "history": "history",
    "checkpoint": 'checkpoint "gales tightened"',
    "rewind": "rewind v17",
    "done": 'done "Fixed the typo in the introduction."',
}

# Worked turns (user text, the command answering it), from the stream example of docs/commands.md.
WORKED_TURNS = (
    ("@goal Fix typos.\n@view draft.md, 3 lines, cursor 1:1\n@text 1-3 of 3\n1│# Notes\n2│\n3│Teh lamp was lit.\n@goal Fix typos.",
     'replace 3 "Teh" "The"'),
    ("@ok v2 3:4", 'done "Fixed the typo in line 3."'),
)

SYSTEM_HEAD = """You edit a writer's markdown draft: answer each turn with one command line, which the editor runs.
Editor turns: @goal the task, @view and @text numbered lines, @check likely slips as N│"old" "new" (fix N takes line N's, fix takes them all, if right), @ok vN (your command made version N), @error (refused, nothing changed), @user (the writer's edit). Read or check, edit, then done "summary".
Commands (quoted strings, \\n for a newline):"""


def _kinds(kinds) -> str:
    """Argument kinds as notation and name: 'a line number N' → 'N line number' (the grammar's own words)."""
    parts = []
    for kind in kinds:
        words, notation = kind.description.rsplit(" ", 1)
        parts.append(f"{notation} {words.removeprefix('a ').removeprefix('the ')}")
    return ", ".join(parts)


def system_prompt() -> str:
    """The system message: what the session looks like, every form of the one grammar, one example
    per verb (left out where the example is the bare verb its usage already shows). Generated each
    time, so it cannot drift from the parser; kept short because every token of it is prefilled
    (at a 1.5B shape on one CPU thread, each costs a few tenths of a second before it is cached)."""
    lines = [SYSTEM_HEAD]
    for name, kinds in (("POINT", grammar.POINT_KINDS), ("RANGE", grammar.RANGE_KINDS)):
        lines.append(f"{name}: {_kinds(kinds)}.")
    for verb in grammar.VERBS:
        usages = " | ".join(form.usage for form in grammar.FORMS_BY_VERB[verb])
        example = EXAMPLES[verb]
        lines.append(usages if example == verb else f"{usages}  e.g. {example}")
    return "\n".join(lines)


def opening_messages() -> list[dict]:
    messages = [{"role": "system", "content": system_prompt()}]
    for user, assistant in WORKED_TURNS:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


_STAND_IN = "…"  # the content of stand-in earlier turns
_SENTINEL = "\x00COMMAND\x00"


class ChatTurns:
    """The pieces of a conversation's rendering, each the exact text one more message adds:
    ``opening`` (system message and worked turns), ``user(text, after=role)``, and the assistant
    turn's ``header`` and ``end`` around its command. Raises ``ChatTemplateError`` for a template
    that rewrites what it rendered before (its pieces would not add up to its rendering)."""

    def __init__(self, template: ChatTemplate) -> None:
        self.template = template
        self.base = opening_messages()
        self.opening = template.render(self.base)
        after_user = self.base + [{"role": "user", "content": _STAND_IN}]
        turn = self._added(after_user, {"role": "assistant", "content": _SENTINEL})
        if turn.count(_SENTINEL) != 1:
            raise ChatTemplateError(f"{template.origin or 'the chat template'}: an assistant turn does not show its content once")
        self.header, self.end = turn.split(_SENTINEL)
        if not self.end:
            raise ChatTemplateError(f"{template.origin or 'the chat template'}: an assistant turn has no end-of-turn text")
        self._contexts = {"assistant": self.base, "user": after_user}

    def _added(self, context: list[dict], message: dict) -> str:
        before = self.template.render(context)
        after = self.template.render(context + [message])
        if not after.startswith(before):
            raise ChatTemplateError(
                f"{self.template.origin or 'the chat template'} rewrites earlier turns when one more {message['role']} turn "
                "follows (not prefix-stable): prompted mode cannot read it incrementally"
            )
        return after[len(before):]

    def user(self, text: str, *, after: str) -> str:
        """The text a user turn adds after a turn of role ``after`` (``assistant`` or ``user``)."""
        return self._added(self._contexts[after], {"role": "user", "content": text})

    def render(self, messages: list[dict]) -> str:
        """The whole conversation (the opening first) in one rendering: what the pieces add up to."""
        return self.template.render(self.base + messages)


def prompt_cache_dir() -> Path:
    """Where opening states are cached: ``$INFITOOL_EDIT_PROMPT_STATES``, else
    ``~/.cache/infitool-edit/prompt-states`` (``$XDG_CACHE_HOME`` honoured)."""
    if os.environ.get("INFITOOL_EDIT_PROMPT_STATES"):
        return Path(os.environ["INFITOOL_EDIT_PROMPT_STATES"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "infitool-edit" / "prompt-states"


class PromptedBackend(SSMBackend):
    """The built-in backend reading the session through the checkpoint's chat template."""

    def __init__(self, model, *, template: ChatTemplate, model_folder: str | Path | None = None,
                 cache_dir: Path | None = None, **options) -> None:
        super().__init__(model, **options)
        self.turns = ChatTurns(template)
        self._end_ids = self.tokenizer.encode(self.turns.end)
        self._cache_file = None
        if model_folder is not None:
            key = hashlib.sha256()
            folder = Path(model_folder).resolve()
            key.update(str(folder).encode())
            for name in ("config.json", "model.safetensors", "tokenizer.json"):
                if (folder / name).exists():
                    stat = (folder / name).stat()
                    key.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            key.update(self.turns.opening.encode())
            self._cache_file = (cache_dir or prompt_cache_dir()) / f"{key.hexdigest()[:32]}.state"
        self._last_role = "assistant"
        self._opened = None  # (state blob) after the opening, computed or cached once
        self._start()

    @property
    def display_name(self) -> str:
        """How the editor names this backend once it is loaded: the model, and that it reads the
        session through its own chat template (prompted mode), not the raw stream."""
        return f"ssm {self.name} · prompted"

    # --- the opening: system message and worked turns, prefilled once (or read from the cache) ---

    @torch.no_grad()
    def _start(self) -> None:
        if self._opened is None:
            self._opened = self._cached_opening()
        if self._opened is None:
            self.state, self.logits, self._tokens = self.model.new_state(), None, 0
            self._prefill(self.turns.opening)
            self._opened = self.state_bytes()
            self._store_opening()
        self.state = self._stored_state(self._opened)
        logits = self._opened[len(self._opened) - 4 * self.model.config.vocab_size:]
        self.logits = torch.frombuffer(bytearray(logits), dtype=torch.float32).to(self._device)
        self._tokens = 0
        self._last_role = "assistant"

    def _cached_opening(self) -> bytes | None:
        if self._cache_file is None or not self._cache_file.is_file():
            return None
        try:
            blob = self._cache_file.read_bytes()
            self._stored_state(blob)
        except (OSError, ValueError):
            return None  # another model's, or damaged: prefill again
        return blob

    def _store_opening(self) -> None:
        if self._cache_file is None:
            return
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._cache_file.with_suffix(".tmp")
            temporary.write_bytes(self._opened)
            os.replace(temporary, self._cache_file)
        except OSError:
            pass  # a cache that cannot be written costs a prefill, nothing else

    # --- the stream, as turns ---------------------------------------------------------------------

    @torch.no_grad()
    def _prefill(self, text: str) -> None:
        """Rendered template text into the state, in one forward call. The RWKV World tokenizer
        matches bytes only, so the end-of-text marker RWKV-7 G1's template writes
        (``<|rwkv_tokenizer_end_of_text|>``) is put in as its token, id 0, as fla's tokenizer does."""
        if not isinstance(self.tokenizer, RWKVWorldTokenizer) or RWKV_END_OF_TEXT not in text:
            SSMBackend.feed(self, text)
            return
        ids: list[int] = []
        for index, part in enumerate(text.split(RWKV_END_OF_TEXT)):
            ids += ([0] if index else []) + self.tokenizer.encode(part)
        logits, _ = self.model(torch.tensor([ids], device=self._device), self.state, last_only=True)
        self.logits = logits[0]
        self._tokens += len(ids)

    @torch.no_grad()
    def feed(self, text: str) -> None:
        """Runtime text (goal and view, an observation, a writer's event) as one user turn."""
        piece = self.turns.user(text.rstrip("\n"), after=self._last_role)
        self._prefill(piece)
        self._last_role = "user"

    @torch.no_grad()
    def command(self, turn: Turn):
        generator = torch.Generator(device=self._device).manual_seed(turn.seed)
        self._prefill(self.turns.header)
        self._last_role = "assistant"
        yield MODEL_PREFIX  # the raw stream's marker; the model read the template's header instead
        if self._ll_tokenizer is None:
            constraint = LineConstraint(self.mask_table, turn.line_count, turn.read_draft, turn.read_headings)
        else:
            constraint = BpeLineConstraint(self._ll_tokenizer, self.model.config.vocab_size)
        line = _LineText(self.tokenizer)
        bias, forced = constraint.mask()
        masked = self.logits + bias  # the header came through a prefill; later steps add the row themselves
        while True:
            if self._ll_tokenizer is not None and line.byte_count >= self.max_command_bytes:
                self._prefill(self.turns.end)  # cut: the runner reports the line as an error
                yield "\n"
                return
            token = forced if forced >= 0 else sample_token(
                masked, temperature=self.temperature, top_p=self.top_p, generator=generator)
            constraint.advance(token)
            piece = line.add(token)
            if constraint.finished:
                # The newline ends the raw line; the model reads the template's end of turn instead
                # (with whatever the last token held before its newline).
                self._prefill(piece.removesuffix("\n") + self.turns.end)
                yield piece
                return
            bias, forced = constraint.mask()
            self._step(token, bias)  # the next token's mask, added inside the step (SSMBackend._step)
            masked = self.logits
            yield piece

    def snapshot(self):
        return super().snapshot(), self._last_role

    def restore(self, mark) -> None:
        inner, self._last_role = mark
        super().restore(inner)

    @torch.no_grad()
    def load(self, state: bytes | None, replay, tokens: int, context: str = "") -> None:
        if state is None:
            self._start()
        else:
            self.state = self._stored_state(state)
            logits = state[len(state) - 4 * self.model.config.vocab_size:]
            self.logits = torch.frombuffer(bytearray(logits), dtype=torch.float32).to(self._device)
            self._last_role = "user"  # every stored chunk ends with runtime text
        for chunk in replay:
            data = chunk.text.encode("utf-8")
            written = data[: chunk.model_bytes].decode("utf-8")
            if written:
                command = written.removeprefix(MODEL_PREFIX).removesuffix("\n")
                self._prefill(self.turns.header)
                # As live: the command's tokens stepped, the end of turn prefilled in place of the
                # newline. (A byte-level model's tokens are exactly the live ones; a BPE line is
                # encoded again, which can segment it differently than the sampling did.)
                for token in self.tokenizer.encode(command):
                    self._step(token)
                self._prefill(self.turns.end)
                self._last_role = "assistant"
            runtime = data[chunk.model_bytes:].decode("utf-8")
            if runtime:
                self.feed(runtime)
        self._tokens = tokens

