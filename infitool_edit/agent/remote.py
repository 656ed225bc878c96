"""A backend for a model behind an OpenAI-compatible completions server —
for writers who outgrow one machine (vLLM serves Mamba models).

The server holds the model to the command grammar through its structured
outputs (``structured_outputs: {"regex": …}``, vLLM's name for it), fed the
same regular expression as llguidance (``grammar.command_regex()``). The
stream's end is sent as the prompt each turn: the server, not this process,
holds the model, so this backend's stored state is only a marker and its
memory is the stream itself (``context_chars`` of it).

Whatever comes back is parsed by the session like any other line: a server
that ignores the grammar gets ``@error …`` as its observation and nothing is
applied.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

from infitool_edit.errors import InfitoolError
from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, StateMismatch, Turn
from infitool_edit.commands.grammar import command_regex

MARKER = b"remote\x00\x00"  # the stored "state": the stream is the memory


class RemoteError(InfitoolError, ValueError):
    """The server could not be reached or answered nonsense (one line)."""


class RemoteBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        temperature: float = 1.0,
        max_command_tokens: int = 256,
        context_chars: int = 16_000,
        timeout: float = 120.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/completions"
        self.name = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_command_tokens = max_command_tokens
        self.context_chars = context_chars
        self.timeout = timeout
        self._context = ""
        self._bytes = 0

    @property
    def stream_tokens(self) -> int:
        """Bytes, not tokens: the server's tokenizer is not known here."""
        return self._bytes

    def feed(self, text: str) -> None:
        self._context = (self._context + text)[-self.context_chars :]
        self._bytes += len(text.encode("utf-8"))

    def command(self, turn: Turn) -> Iterator[str]:
        self.feed(MODEL_PREFIX)
        yield MODEL_PREFIX
        for piece in self._complete(self._context, turn.seed):
            self.feed(piece)
            yield piece
        self.feed("\n")
        yield "\n"

    def snapshot(self) -> tuple[str, int]:
        return self._context, self._bytes

    def restore(self, mark: tuple[str, int]) -> None:
        self._context, self._bytes = mark

    def state_bytes(self) -> bytes:
        return MARKER

    def load(self, state: bytes | None, replay: Sequence[Chunk], tokens: int, context: str = "") -> None:
        if state is not None and state != MARKER:
            raise StateMismatch(f"this session was run by a local backend, not the server's {self.name}")
        self._context = context[-self.context_chars :]
        self._bytes = tokens

    def _complete(self, prompt: str, seed: int) -> Iterator[str]:
        body = {
            "model": self.name,
            "prompt": prompt,
            "max_tokens": self.max_command_tokens,
            "temperature": self.temperature,
            "seed": seed % 2**31,
            "stream": True,
            "stop": ["\n"],
            "structured_outputs": {"regex": command_regex()},
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                for raw in response:  # server-sent events, one `data: {...}` per line
                    line = raw.decode("utf-8").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    piece = json.loads(data)["choices"][0]["text"]
                    if piece:
                        yield piece.replace("\n", "")
        except urllib.error.HTTPError as error:
            raise RemoteError(f"{self.url}: the server refused the request ({error.code} {error.reason})") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(f"cannot reach {self.url}: {reason}") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise RemoteError(f"{self.url}: not an OpenAI-compatible completions stream") from None
