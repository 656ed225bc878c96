"""A backend that replays a command file, token by token, at a set rate.

For demos and UI tests: the TUI shows it typing exactly as it would show a
model. Its "state" is its position in the script, so resume and rewind work
the same way as for a model.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, StateMismatch, Turn

END_OF_SCRIPT = 'done "end of script"'
POSITION = struct.Struct("<q")  # the stored state: the index of the next line


def read_script(path_or_lines: str | Path | Sequence[str]) -> list[str]:
    """Command lines of a script: blank lines and ``//`` comments skipped.
    Lines are not checked here: a bad one becomes an error observation."""
    if isinstance(path_or_lines, (str, Path)):
        # "\n" only: a quoted text may hold U+2028 or U+0085, where str.splitlines breaks too
        lines = Path(path_or_lines).read_text(encoding="utf-8").split("\n")
    else:
        lines = list(path_or_lines)
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("//")]


def _model_lines(text: str) -> int:
    return sum(line.startswith(MODEL_PREFIX) for line in text.split("\n"))


class ScriptedBackend:
    name = "script"
    context_chars = 0

    def __init__(
        self,
        path_or_lines: str | Path | Sequence[str],
        *,
        rate: float | None = None,
        tokens_per_command: int | None = None,
    ) -> None:
        """``rate``: commands per second (None: as fast as possible).
        ``tokens_per_command``: split each line into this many tokens (None:
        one token per character)."""
        self.lines = read_script(path_or_lines)
        self.rate = rate
        self.tokens_per_command = tokens_per_command
        self.position = 0  # index of the next script line
        self._tokens = 0

    @property
    def stream_tokens(self) -> int:
        return self._tokens

    def feed(self, text: str) -> None:
        self._tokens += len(text.encode("utf-8"))
        # A model line fed back as text (recorded in the history, missing
        # from the stream after a kill) was this script's line: move past it.
        self.position += _model_lines(text)

    def command(self, turn: Turn) -> Iterator[str]:
        line = self.lines[self.position] if self.position < len(self.lines) else END_OF_SCRIPT
        tokens = [MODEL_PREFIX, *self._split(line), "\n"]
        delay = 1.0 / self.rate / len(tokens) if self.rate else 0.0
        for token in tokens:
            if delay:
                time.sleep(delay)
            self._tokens += len(token.encode("utf-8"))
            yield token
        self.position += 1

    def doubt(self) -> None:
        return None  # a script is what it is

    def snapshot(self) -> tuple[int, int]:
        return self.position, self._tokens

    def restore(self, mark: tuple[int, int]) -> None:
        self.position, self._tokens = mark

    def state_bytes(self) -> bytes:
        return POSITION.pack(self.position)

    def load(self, state: bytes | None, replay: Sequence[Chunk], tokens: int, context: str = "") -> None:
        if state is not None and len(state) != POSITION.size:
            raise StateMismatch("this session was run by a model, not a script: resume it with --model")
        self.position = POSITION.unpack(state)[0] if state else 0
        self.position += sum(_model_lines(chunk.text) for chunk in replay)
        self._tokens = tokens

    def _split(self, line: str) -> list[str]:
        if not self.tokens_per_command:
            return list(line)
        size = max(1, -(-len(line) // self.tokens_per_command))
        return [line[i : i + size] for i in range(0, len(line), size)]
