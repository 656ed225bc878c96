"""What the runner asks of a backend: tokens for the next command line.

A backend owns whatever remembers the stream (a recurrent state, a position
in a script). The runner owns the stream itself and tells the backend every
piece of text it adds (``feed``); the backend answers each turn with the
model's line as a lazy iterator of tokens, so the runner can stop between
any two tokens (pause within one token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infitool_edit.agent.held_back import Doubt
from infitool_edit.errors import InfitoolError

MODEL_PREFIX = "> "
"""Every line the model writes starts with this; the runtime's lines with ``@``."""


class StateMismatch(InfitoolError, ValueError):
    """The session's stored state was written by another kind of backend or
    another model (one line: which one to resume with instead)."""


@dataclass(frozen=True)
class Turn:
    """What a backend may know about the draft when it writes a command."""

    line_count: int  # lines in the draft: line-number arguments stay within it
    head_version: int | None  # the draft's version the command will apply to
    seed: int  # seeds this command's sampling: same stream, same seed, same command
    read_draft: Callable[[], str] = str  # the draft's text, for search strings that must occur
    # The draft's headings as (level, slug) (`Workspace.heading_slugs`), for heading paths that
    # must resolve (None: the constraint parses `read_draft`'s text when it needs them).
    read_headings: Callable[[], Sequence[tuple[int, str]]] | None = None
    # The model's last line was held back (agent/held_back.py): this one is forced to be
    # `ending` (the held line's Doubt.ending); None: the model writes it.
    ending: bytes | None = None
    # The first command since the goal was given: how surely the model chose it tells a goal
    # it knows from one it is guessing at (`min_plan_p`, agent/held_back.py).
    opens_goal: bool = False


@dataclass(frozen=True)
class Chunk:
    """A stored piece of the stream to replay: its first ``model_bytes`` bytes
    were generated token by token, the rest was fed as runtime text."""

    text: str
    model_bytes: int


class Backend(Protocol):
    name: str  # shown as the author "model:<name>" of the model's versions
    # How much of the stream's end the backend is shown again when loaded
    # (0: its stored state remembers everything it needs).
    context_chars: int

    @property
    def stream_tokens(self) -> int:
        """Tokens consumed since the start of the stream."""

    def feed(self, text: str) -> None:
        """Consume runtime text (prompt, observations, writer events)."""

    def command(self, turn: Turn) -> Iterator[str]:
        """The next model line, ``MODEL_PREFIX`` first and ``\\n`` last, one
        token's text per item; each token is consumed as it is yielded."""

    def doubt(self) -> Doubt | None:
        """Why the line just written should not be applied, when the backend doubts it (the
        model guessed at its place in the draft or at what the goal asks, or the line was cut
        at the byte limit); None otherwise, and always for a backend that cannot tell
        (agent/held_back.py)."""

    def snapshot(self) -> Any:
        """An in-memory mark to come back to (an abandoned partial line)."""

    def restore(self, mark: Any) -> None: ...

    def state_bytes(self) -> bytes:
        """The state to store with the stream (fixed size per backend)."""

    def load(self, state: bytes | None, replay: Sequence[Chunk], tokens: int, context: str = "") -> None:
        """Become the backend that consumed the stream up to a stored state
        (``None``: the empty stream) and then ``replay``, exactly as it was
        consumed live; ``tokens`` is the stream's token count after it all;
        ``context`` the stream's last ``context_chars`` characters."""


QUANTIZE_CHOICES = ("int8", "q4")
"""How a local model's weights can be read to decode (``--quantize``): the names of
model/quantize.py's QUANTIZERS, kept here so that checking one imports no torch."""


class QuantizeError(InfitoolError, ValueError):
    """A ``--quantize`` that is not a choice, or given for a backend without weights (one line)."""


def check_quantize(quantize: str | None, *, script=None, server=None) -> None:
    """Refuse, before any checkpoint is read (or the editor's screen opens), a ``--quantize`` that
    is not a choice or is not for a local model."""
    if quantize is None:
        return
    if quantize not in QUANTIZE_CHOICES:
        raise QuantizeError(f"--quantize is one of {', '.join(QUANTIZE_CHOICES)}, not {quantize!r}")
    if script is not None or server is not None:
        raise QuantizeError("--quantize is for a local model: a script has no weights, a server quantizes its own")
