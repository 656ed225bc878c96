"""The remote backend against a real llama.cpp server on 127.0.0.1.

The server is the `llama-server` binary named by INFITOOL_LLAMA_SERVER, else
the one tools/build_llamacpp.sh builds once from the llama-cpp-python sdist
into ~/.cache/infitool-edit/llama.cpp/ (no PyPI package ships a Linux build
of it): the `llama_cpp` fixture in tests/conftest.py. Where it cannot be had
(no cmake or compiler, no network to PyPI) these tests skip with one line.
It serves a tiny random Mamba the test builds and converts to GGUF twice:
with the `gguf` package (bench/_llamacpp.py's writer, a byte vocabulary) and
with llama.cpp's own convert_hf_to_gguf.py from the source tree the server
was built from (its GPT-NeoX BPE vocabulary, so a sampled token is several
bytes the grammar must admit together; skipped when that source is not
found). A random model writes nonsense, so what is checked is the grammar:
every byte the server sent must be one the command DFA admits, and every
line the server ended itself must be a whole command, which only holds if
the GBNF reached llama.cpp's sampler; the same server without the grammar
writes bytes the DFA refuses (the control).

The request a llama.cpp server gets is checked without a server too.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from infitool_edit.agent.events import CommandApplied, CommandFailed
from infitool_edit.agent.remote import RemoteBackend, ServerKind
from infitool_edit.agent.runner import Runner
from infitool_edit.commands.fsm import command_dfa
from infitool_edit.commands.grammar import command_gbnf
from infitool_edit.session.editing import EditingSession

def test_a_llamacpp_server_is_sent_the_gbnf_and_the_chat() -> None:
    backend = RemoteBackend("http://127.0.0.1:9/v1", "m")
    backend._server = ServerKind("llama.cpp", "b6000-abc", chat_template=True)  # as probe() reads /props
    body = backend.request_body("@goal Go.\n> ", seed=3)
    assert body["grammar"] == command_gbnf()
    assert "structured_outputs" not in body and "guided_regex" not in body
    assert body["messages"][-1] == {"role": "user", "content": "@goal Go."}
    assert backend.url == "http://127.0.0.1:9/v1/chat/completions"
    backend._server = ServerKind("llama.cpp", "b6000-abc", chat_template=False)
    assert backend.url == "http://127.0.0.1:9/v1/completions" and backend.request_body("x", 1)["prompt"] == "x"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_gguf(converter: str, folder: Path, server: Path) -> Path:
    """A tiny random Mamba as GGUF, written by the `gguf` package or by llama.cpp's converter."""
    import torch

    from infitool_edit.bench import _llamacpp

    if converter == "gguf":
        from infitool_edit.agent.ssm import random_tiny_model

        return _llamacpp.write_gguf(random_tiny_model(2, hidden_size=64, layers=2), folder / "tiny-mamba.gguf")
    script = _llamacpp.find_converter(server)
    if script is None:
        pytest.skip("no convert_hf_to_gguf.py beside the server's build (set INFITOOL_LLAMA_CONVERT)")
    from infitool_edit.model import MambaConfig, MambaLM
    from infitool_edit.model.checkpoint import save_checkpoint

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(2)
    try:  # GPT-NeoX's vocabulary size, as state-spaces/mamba-130m-hf has: the converter writes that vocabulary
        model = MambaLM(MambaConfig(vocab_size=50280, hidden_size=64, state_size=8, num_hidden_layers=2)).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    return _llamacpp.convert_with_llama_cpp(script, save_checkpoint(model, folder / "hf"), folder / "tiny-neox.gguf")


@pytest.fixture(scope="module", params=["gguf", "convert_hf_to_gguf"])
def llama_server(request, tmp_path_factory, llama_cpp) -> Iterator[str]:
    """A llama-server on 127.0.0.1 serving the tiny model; its /v1 URL. One per converter, shared by the tests."""
    folder = tmp_path_factory.mktemp(f"llama-{request.param}")
    model_file = tiny_gguf(request.param, folder, llama_cpp.server)
    port = free_port()
    log_path = folder / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(llama_cpp.server), "-m", str(model_file), "--host", "127.0.0.1", "--port", str(port), "-c", "2048", "-t", "1", "-np", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()[-2000:]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama-server did not come up within 60 s"
            time.sleep(0.2)
        yield url + "/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def assert_in_the_grammar(line: str, *, whole: bool) -> None:
    data = line.encode()
    state, read = command_dfa().walk(data)
    assert read == len(data), f"byte {read} of {line!r} is outside the grammar"
    if whole:
        assert command_dfa().accepts(data), f"{line!r} stopped before the end of a command"


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_a_real_llamacpp_server_is_held_to_the_grammar(llama_server: str, tmp_path: Path, api: str) -> None:
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nTeh first line.\n")
    backend = RemoteBackend(llama_server, "tiny-mamba", api=api, max_command_tokens=48, timeout=60)
    assert backend.server().name == "llama.cpp"
    events: list = []
    with EditingSession.open(draft, author="writer") as session:
        Runner(session, backend, "Fix the typo.", emit=events.append, max_commands=4, seed=1).run()
    lines = [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]
    assert lines, events
    for line in lines:
        # Every byte admitted; a line cut by max_tokens may stop short of a whole command.
        assert_in_the_grammar(line, whole=False)


def _complete(url: str, body: dict) -> dict:
    answer = httpx.post(url + "/completions", json=body | {"stream": False}, timeout=120)
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()["choices"][0]


def test_lines_the_server_ends_are_whole_commands_and_without_the_grammar_they_are_not(llama_server: str) -> None:
    """The backend's own request body, unstreamed so finish_reason says why each line ended:
    a line ended by the stop newline must be a whole command. The same request without the
    grammar is the control: a random model then writes bytes the DFA refuses."""
    backend = RemoteBackend(llama_server, "tiny-mamba", api="completions", max_command_tokens=96, timeout=120)
    prompt = "@goal Fix the typo.\n@text # Title\\n\\nTeh first line.\\n\n> "
    ended = 0
    for seed in range(6):
        choice = _complete(llama_server, backend.request_body(prompt, seed))
        assert_in_the_grammar(choice["text"], whole=choice["finish_reason"] == "stop")
        ended += choice["finish_reason"] == "stop"
    free = {key: value for key, value in backend.request_body(prompt, 0).items() if key != "grammar"}
    refused = 0
    for seed in range(3):
        text = _complete(llama_server, free | {"seed": seed})["text"]
        refused += command_dfa().walk(text.encode())[1] < len(text.encode())
    assert refused == 3, "without the grammar the random model wrote lines the grammar admits: the control proves nothing"
    print(f"{ended} of 6 constrained lines ended by the server itself")
