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

A server is not trusted to end: one command is cut at ``max_command_bytes``
of text, must arrive whole within ``timeout`` seconds (a deadline for the
whole command, not for each read, so a server trickling a byte at a time
cannot hold the run), and loses every C0/C1 control character before it is
printed or applied (no terminal escape sequences reach the writer's screen).
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

from infitool_edit.errors import InfitoolError
from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, StateMismatch, Turn
from infitool_edit.commands.grammar import command_regex

MARKER = b"remote\x00\x00"  # the stored "state": the stream is the memory
# C0 controls, DEL and C1 controls: ESC-led sequences (OSC 52, title changes) start here.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_EVENT_BYTES = 1 << 20  # one server-sent event line; a longer one is not a completion


def strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)


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
        max_command_bytes: int = 4096,
    ) -> None:
        self.url = base_url.rstrip("/") + "/completions"
        self.name = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_command_tokens = max_command_tokens
        self.context_chars = context_chars
        self.timeout = timeout
        self.max_command_bytes = max_command_bytes
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
        deadline = time.monotonic() + self.timeout
        sent = 0
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                for raw in _event_lines(response, deadline, self.url, self.timeout):
                    line = raw.decode("utf-8").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    piece = json.loads(data)["choices"][0]["text"]
                    if not isinstance(piece, str):
                        raise RemoteError(f"{self.url}: the server sent {type(piece).__name__} where text belongs")
                    piece = strip_controls(piece)
                    room = self.max_command_bytes - sent
                    piece = piece.encode("utf-8")[:room].decode("utf-8", "ignore")
                    if piece:
                        sent += len(piece.encode("utf-8"))
                        yield piece
                    if sent >= self.max_command_bytes:
                        return  # cut: the session reads what came as one (likely bad) line
        except RemoteError:
            raise
        except urllib.error.HTTPError as error:
            raise RemoteError(f"{self.url}: the server refused the request ({error.code} {error.reason})") from None
        except (socket.timeout, TimeoutError):
            raise RemoteError(f"{self.url}: no whole command within {self.timeout:g} s") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(f"cannot reach {self.url}: {reason}") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise RemoteError(f"{self.url}: not an OpenAI-compatible completions stream") from None


def _event_lines(response, deadline: float, url: str, timeout: float):
    """The response's lines, each read against the command's deadline: the
    socket's timeout is set to the time left before every read."""
    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
    buffer = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RemoteError(f"{url}: no whole command within {timeout:g} s")
        if sock is not None:
            sock.settimeout(left)
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line
        if len(buffer) > _MAX_EVENT_BYTES:
            raise RemoteError(f"{url}: the server sent an event line over {_MAX_EVENT_BYTES} bytes")
