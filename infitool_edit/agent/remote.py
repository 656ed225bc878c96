"""A backend for a model behind an OpenAI-compatible server: vLLM, or
llama.cpp's ``llama-server`` -- for writers whose model is too big for the
editor's own process.

Which server it is, is asked first (``probe``): vLLM answers ``GET /version``,
llama.cpp ``GET /props``. Each is then held to the command grammar in the
form it honours -- vLLM >= 0.12 ``structured_outputs: {"regex": ...}``, older
vLLM ``guided_regex`` (both ``grammar.command_regex()``, the expression
llguidance gets), llama.cpp a GBNF ``grammar`` (``grammar.command_gbnf()``).
vLLM silently ignores fields it does not know, so a server whose kind or
version cannot be established is refused in one line rather than run
unconstrained.

Instruct models are spoken to through ``/v1/chat/completions`` with
``chat_messages``' conversation; base models through ``/v1/completions``
with the stream's end as the prompt. Either way the server, not this
process, holds the model, so this backend's stored state is only a marker
and its memory is the stream itself (``context_chars`` of it).

Whatever comes back is parsed by the session like any other line: a server
that ignores the grammar gets ``@error ...`` as its observation and nothing is
applied.

A server is not trusted to end: one command is cut at ``max_command_bytes``
of text, must arrive whole within ``timeout`` seconds (a deadline for the
whole command, not for each read, so a server trickling a byte at a time
cannot hold the run), and loses every C0/C1 control character before it is
printed or applied (no terminal escape sequences reach the writer's screen).
The HTTP is httpx2's (connections, chunked streams, errors); the
server-sent events are split into lines here, each line bounded.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx2 as httpx

from infitool_edit.errors import InfitoolError
from infitool_edit.agent.backend import MODEL_PREFIX, Chunk, StateMismatch, Turn
from infitool_edit.commands import grammar
from infitool_edit.commands.grammar import command_gbnf, command_regex

MARKER = b"remote\x00\x00"  # the stored "state": the stream is the memory
# C0 controls, DEL and C1 controls: ESC-led sequences (OSC 52, title changes) start here.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_EVENT_BYTES = 1 << 20  # one server-sent event line; a longer one is not a completion


def strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)


class RemoteError(InfitoolError, ValueError):
    """The server could not be reached or answered nonsense (one line)."""


# --- which server, and how it is held to the grammar --------------------------------------------

VLLM_STRUCTURED_OUTPUTS = (0, 12)  # from this version on vLLM reads `structured_outputs`


@dataclass(frozen=True)
class ServerKind:
    name: str  # "vllm" or "llama.cpp"
    version: str
    chat_template: bool | None  # llama.cpp says whether its model has one; vLLM does not

    def constraint(self) -> dict:
        """The request fields that hold this server's model to the command grammar."""
        if self.name == "llama.cpp":
            return {"grammar": command_gbnf()}
        if _version_tuple(self.version) >= VLLM_STRUCTURED_OUTPUTS:
            return {"structured_outputs": {"regex": command_regex()}}
        return {"guided_regex": command_regex()}


def _version_tuple(text: str) -> tuple[int, ...]:
    numbers = re.match(r"v?(\d+)\.(\d+)", text)
    if numbers is None:
        raise RemoteError(f"cannot read the vLLM version {text[:40]!r}: refusing to run the model unconstrained")
    return int(numbers.group(1)), int(numbers.group(2))


def server_root(base_url: str) -> str:
    """http://host:8000/v1 -> http://host:8000: /version and /props live at the root."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def probe(client: httpx.Client, base_url: str) -> ServerKind:
    """Ask the server what it is: vLLM's ``/version``, else llama.cpp's ``/props``."""
    root = server_root(base_url)
    try:
        answer = client.get(root + "/version")
        if answer.status_code == 200 and isinstance(_json(answer).get("version"), str):
            version = _json(answer)["version"]
            _version_tuple(version)
            return ServerKind("vllm", version, None)
        answer = client.get(root + "/props")
        props = _json(answer) if answer.status_code == 200 else {}
        if "default_generation_settings" in props or "build_info" in props:
            template = props.get("chat_template")
            return ServerKind("llama.cpp", str(props.get("build_info", "unknown")), bool(template))
    except httpx.TransportError as error:
        raise RemoteError(f"cannot reach {root}: {_reason(error)}") from None
    raise RemoteError(
        f"{root}: neither vLLM (/version) nor llama.cpp (/props) answered, so the grammar cannot be sent "
        "in a form it honours: refusing to run the model unconstrained"
    )


def _json(answer) -> dict:
    try:
        value = answer.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --- the conversation an instruct model reads -----------------------------------------------------

def system_prompt() -> str:
    """The command language in a few lines, generated from the grammar so it
    cannot drift from the parser. (Prompted mode's richer system message, with
    worked turns, replaces this when it lands: see ``chat_messages``.)"""
    usages = "\n".join(f"  {form.usage}" for form in grammar.FORMS)
    kinds = "\n".join(f"  {kind.description}" for kind in grammar.TOKEN_KINDS)
    return (
        "You edit a markdown draft for a writer. You never write prose at the writer: each reply is "
        "exactly one command line, which the editor carries out and answers with an observation "
        "(@ok, @text, @error, ...). Arguments follow the verb after one space each.\n"
        f"Commands:\n{usages}\n"
        f"Arguments (POINT and RANGE are any address of these kinds):\n{kinds}\n"
        'Strings are in double quotes; inside them write \\n, \\t, \\" and \\\\ for a new line, a tab, '
        "a quote and a backslash. Lines and columns count from 1. Start with outline or read; "
        'end with done "summary".'
    )


def chat_messages(stream_text: str) -> list[dict]:
    """The stream (``@goal ...``, observations, ``> command`` lines) as a chat:
    a system message teaching the language, each command line an assistant turn,
    everything between them one user turn. This one function is what prompted
    mode's renderer replaces."""
    messages = [{"role": "system", "content": system_prompt()}]
    user: list[str] = []
    lines = stream_text.split("\n")
    if lines and lines[-1] == MODEL_PREFIX:
        lines.pop()  # the prompt for the command being asked for
    for line in lines:
        if line.startswith(MODEL_PREFIX):
            if user:
                messages.append({"role": "user", "content": "\n".join(user).strip("\n")})
                user = []
            messages.append({"role": "assistant", "content": line[len(MODEL_PREFIX):]})
        else:
            user.append(line)
    content = "\n".join(user).strip("\n")
    if content or messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": content or "(go on)"})
    return messages


# --- the backend ------------------------------------------------------------------------------

class RemoteBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        api: str = "auto",
        temperature: float = 1.0,
        max_command_tokens: int = 256,
        context_chars: int = 16_000,
        timeout: float = 120.0,
        max_command_bytes: int = 4096,
    ) -> None:
        if api not in ("auto", "chat", "completions"):
            raise RemoteError(f"--server-api is auto, chat or completions, not {api!r}")
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.api = api
        self.temperature = temperature
        self.max_command_tokens = max_command_tokens
        self.context_chars = context_chars
        self.timeout = timeout
        self.max_command_bytes = max_command_bytes
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout), trust_env=False)
        self._server: ServerKind | None = None
        self._context = ""
        self._bytes = 0

    @property
    def url(self) -> str:
        return self.base_url + ("/chat/completions" if self._chat() else "/completions")

    def server(self) -> ServerKind:
        if self._server is None:
            self._server = probe(self._client, self.base_url)
        return self._server

    def _chat(self) -> bool:
        if self.api != "auto":
            return self.api == "chat"
        kind = self.server()
        # llama.cpp says whether its model has a chat template; vLLM's instruct models all do.
        return kind.chat_template if kind.chat_template is not None else True

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

    def doubt(self) -> None:
        return None  # the server's probabilities are not asked for

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

    def request_body(self, stream_text: str, seed: int) -> dict:
        body = {
            "model": self.name,
            "max_tokens": self.max_command_tokens,
            "temperature": self.temperature,
            "seed": seed % 2**31,
            "stream": True,
            "stop": ["\n"],
            **self.server().constraint(),
        }
        if self._chat():
            body["messages"] = chat_messages(stream_text)
        else:
            body["prompt"] = stream_text
        return body

    def _complete(self, prompt: str, seed: int) -> Iterator[str]:
        url = self.url
        deadline = time.monotonic() + self.timeout
        sent = 0
        try:
            body = self.request_body(prompt, seed)
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    raise RemoteError(
                        f"{url}: the server refused the request ({response.status_code} {response.reason_phrase})")
                for line in _event_lines(response, deadline, url, self.timeout):
                    if not line.startswith("data:"):
                        continue
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    piece = _piece(json.loads(data)["choices"][0], url)
                    if piece is None:
                        continue
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
        except httpx.TimeoutException:
            raise RemoteError(f"{url}: no whole command within {self.timeout:g} s") from None
        except httpx.TransportError as error:
            raise RemoteError(f"cannot reach {url}: {_reason(error)}") from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise RemoteError(f"{url}: not an OpenAI-compatible completions stream") from None


def _piece(choice: dict, url: str) -> str | None:
    """The text of one streamed choice: ``text`` (completions) or ``delta.content`` (chat;
    the first delta may carry only the role)."""
    if "delta" in choice:
        piece = choice["delta"].get("content")
        if piece is None:
            return None
    else:
        piece = choice["text"]
    if not isinstance(piece, str):
        raise RemoteError(f"{url}: the server sent {type(piece).__name__} where text belongs")
    return piece


def _event_lines(response, deadline: float, url: str, timeout: float) -> Iterator[str]:
    """The response's lines, each read against the command's deadline: before every
    read the request's read timeout (httpcore's per-request ``timeout`` extension,
    which it consults on each read) is set to the time left."""
    timeouts = response.request.extensions.get("timeout")
    buffer = b""
    chunks = response.iter_raw()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RemoteError(f"{url}: no whole command within {timeout:g} s")
        if isinstance(timeouts, dict):
            timeouts["read"] = left
        chunk = next(chunks, b"")
        if not chunk:
            if buffer:
                yield buffer.decode("utf-8")
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode("utf-8").strip()
        if len(buffer) > _MAX_EVENT_BYTES:
            raise RemoteError(f"{url}: the server sent an event line over {_MAX_EVENT_BYTES} bytes")
