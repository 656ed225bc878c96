"""The remote backend against a real llama.cpp server on 127.0.0.1.

The server is the `llama-server` binary named by INFITOOL_LLAMA_SERVER (no
PyPI package ships a Linux build of it; docs/agent.md says how to build it
from the llama-cpp-python sdist); without it the test skips with one line.
It serves a tiny random Mamba written as GGUF with the `gguf` package
(bench/_llamacpp.py's converter). A random model writes nonsense, so what is
checked is the grammar: every byte the server sent must be one the command
DFA admits, which only holds if the GBNF reached llama.cpp's sampler.

The request a llama.cpp server gets is checked without a server too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from infitool_edit.agent.events import CommandApplied, CommandFailed
from infitool_edit.agent.remote import RemoteBackend, ServerKind
from infitool_edit.agent.runner import Runner
from infitool_edit.commands.fsm import command_dfa
from infitool_edit.commands.grammar import command_gbnf
from infitool_edit.session.editing import EditingSession

SERVER = os.environ.get("INFITOOL_LLAMA_SERVER")


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


@pytest.fixture
def llama_server(tmp_path: Path):
    if not SERVER:
        pytest.skip("no llama-server: set INFITOOL_LLAMA_SERVER to its path (docs/agent.md)")
    from infitool_edit.agent.ssm import random_tiny_model
    from infitool_edit.bench._llamacpp import write_gguf

    model_file = write_gguf(random_tiny_model(2, hidden_size=64, layers=2), tmp_path / "tiny-mamba.gguf")
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [SERVER, "-m", str(model_file), "--host", "127.0.0.1", "--port", str(port), "-c", "2048", "-t", "1", "-np", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
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
        process.wait(timeout=10)
        log.close()


def test_a_real_llamacpp_server_is_held_to_the_grammar(llama_server: str, tmp_path: Path) -> None:
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nTeh first line.\n")
    backend = RemoteBackend(llama_server, "tiny-mamba", api="completions", max_command_tokens=48, timeout=60)
    assert backend.server().name == "llama.cpp"
    events: list = []
    with EditingSession.open(draft, author="writer") as session:
        Runner(session, backend, "Fix the typo.", emit=events.append, max_commands=4, seed=1).run()
    lines = [e.line for e in events if isinstance(e, (CommandApplied, CommandFailed))]
    assert lines, events
    dfa = command_dfa()
    for line in lines:
        data = line.encode()
        state, read = dfa.walk(data)
        # Every byte admitted; a line cut by max_tokens may stop short of a whole command.
        assert read == len(data), f"byte {read} of {line!r} is outside the grammar"
