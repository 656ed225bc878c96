"""The remote backend against a stand-in for vLLM's OpenAI-compatible server
(vLLM itself cannot run here: it needs a GPU build): what it sends, how it
reads the streamed answer, and that an unparsable line from the server
changes nothing. llama.cpp's real server is tested in
test_agent_llamacpp_server.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infitool_edit.agent.events import CommandApplied, CommandFailed, Finished
from infitool_edit.agent.remote import RemoteBackend, RemoteError
from infitool_edit.agent.runner import Runner
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.commands.grammar import command_regex
from infitool_edit.session.editing import EditingSession


class _Server:
    """Answers each completion request with the next scripted line, streamed
    as server-sent events in a few pieces, and keeps the requests."""

    def __init__(self, lines: list[str], version: str | None = "0.12.0") -> None:
        self.lines = list(lines)
        self.requests: list[dict] = []
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # vLLM answers /version; no /props (that is llama.cpp's)
                if self.path != "/version" or version is None:
                    self.send_error(404)
                    return
                body = json.dumps({"version": version}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.paths.append(self.path)
                line = server.lines.pop(0)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if self.path.endswith("/chat/completions"):  # the first delta carries only the role
                    self.wfile.write(f"data: {json.dumps({'choices': [{'delta': {'role': 'assistant'}}]})}\n\n".encode())
                for start in range(0, len(line), 4):
                    piece = line[start : start + 4]
                    choice = {"delta": {"content": piece}} if self.path.endswith("/chat/completions") else {"text": piece}
                    self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, **choice}]})}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def session(tmp_path: Path):
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nTeh first line.\n")
    with EditingSession.open(draft, author="writer") as session:
        yield session


def test_the_server_is_held_to_the_grammar_and_its_bad_line_changes_nothing(session: EditingSession) -> None:
    server = _Server(['replace 3 Teh "The"', 'replace 3 "Teh" "The"', 'done "fixed"'])
    events: list = []
    backend = RemoteBackend(server.url, "mamba-served", api="completions")
    Runner(session, backend, "Fix the typo.", emit=events.append, seed=5).run()
    server.http.shutdown()

    failed = [e for e in events if isinstance(e, CommandFailed)]
    assert [e.line for e in failed] == ['replace 3 Teh "The"']
    assert failed[0].message == "column 11: expected a quoted string"
    applied = [e for e in events if isinstance(e, CommandApplied)]
    assert [(e.line, e.author) for e in applied] == [
        ('replace 3 "Teh" "The"', "model:mamba-served"), ('done "fixed"', "model:mamba-served")
    ]
    assert events[-1] == Finished("fixed")
    assert session.draft_path.read_text() == "# Title\n\nThe first line.\n"
    assert session.history.count() == 2  # the bad line made no version

    first, second = server.requests[0], server.requests[1]
    assert first["structured_outputs"] == {"regex": command_regex()}
    assert first["stop"] == ["\n"] and first["stream"] is True and first["model"] == "mamba-served"
    assert first["prompt"].startswith("@goal Fix the typo.\n") and first["prompt"].endswith("> ")
    assert second["prompt"].endswith('> replace 3 Teh "The"\n@error column 11: expected a quoted string\n> ')
    assert first["seed"] != second["seed"]


def test_resume_shows_the_server_the_end_of_the_stream_again(session: EditingSession) -> None:
    server = _Server(['note "one"', 'note "two"', 'done "x"'])
    Runner(session, RemoteBackend(server.url, "m", api="completions"), "Take notes.", max_commands=1).run()
    Runner(session, RemoteBackend(server.url, "m", api="completions", context_chars=60), None, max_commands=1).run()
    server.http.shutdown()
    stream = StreamLog(stream_dir_for(session.history)).tail_text()
    resumed_prompt = server.requests[1]["prompt"]
    assert resumed_prompt == (stream[: stream.index('> note "two"')] + "> ")[-60:]
    assert len(resumed_prompt) == 60


def test_an_unreachable_server_is_a_one_line_error(session: EditingSession) -> None:
    backend = RemoteBackend("http://127.0.0.1:9/v1", "m", timeout=5)
    with pytest.raises(RemoteError, match=r"^cannot reach http://127.0.0.1:9: "):
        Runner(session, backend, "Go.").run()


def test_the_cli_runs_against_a_server(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from infitool_edit.cli import app

    draft = tmp_path / "draft.md"
    draft.write_text("Teh end.\n")
    server = _Server(['replace "Teh" "The"', 'done "ok"'])
    result = CliRunner().invoke(app, ["run", str(draft), "--goal", "Fix.", "--server", server.url, "--server-model", "m"])
    server.http.shutdown()
    assert result.exit_code == 0, result.output
    assert draft.read_text() == "The end.\n"
    half = CliRunner().invoke(app, ["run", str(draft), "--goal", "Fix.", "--server", server.url])
    assert half.exit_code == 1
    assert half.output.strip().startswith("infitool-edit: --server and --server-model go together")


def test_an_instruct_model_gets_a_chat_held_by_structured_outputs(session: EditingSession) -> None:
    server = _Server(['read 3', 'replace 3 "Teh" "The"', 'done "fixed"'])
    Runner(session, RemoteBackend(server.url, "instruct"), "Fix the typo.", seed=1).run()
    server.http.shutdown()
    assert server.paths == ["/v1/chat/completions"] * 3
    assert session.draft_path.read_text() == "# Title\n\nThe first line.\n"
    first, third = server.requests[0], server.requests[2]
    assert first["structured_outputs"] == {"regex": command_regex()} and "guided_regex" not in first
    assert "prompt" not in first and first["stop"] == ["\n"]
    roles = [m["role"] for m in third["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert 'replace RANGE "old" "new"' in third["messages"][0]["content"]  # taught from the grammar
    assert third["messages"][1]["content"].startswith("@goal Fix the typo.\n@view draft.md")
    assert [m["content"] for m in third["messages"][2::2]] == ["read 3", 'replace 3 "Teh" "The"']
    assert third["messages"][3]["content"].startswith("@text 3")


def test_an_older_vllm_gets_guided_regex(session: EditingSession) -> None:
    server = _Server(['done "x"'], version="0.8.5")
    Runner(session, RemoteBackend(server.url, "m"), "Go.").run()
    server.http.shutdown()
    assert server.requests[0]["guided_regex"] == command_regex()
    assert "structured_outputs" not in server.requests[0]


def test_a_server_that_cannot_say_what_it_is_is_refused_not_run_unconstrained(session: EditingSession) -> None:
    server = _Server(['done "x"'], version=None)
    with pytest.raises(RemoteError, match="refusing to run the model unconstrained$"):
        Runner(session, RemoteBackend(server.url, "m"), "Go.").run()
    server.http.shutdown()
    assert server.requests == []  # nothing was asked of the model
    unreadable = _Server(['done "x"'], version="nightly")
    with pytest.raises(RemoteError, match="cannot read the vLLM version 'nightly'"):
        Runner(session, RemoteBackend(unreadable.url, "m"), "Go.").run()
    unreadable.http.shutdown()
