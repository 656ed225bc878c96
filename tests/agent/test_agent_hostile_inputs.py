"""A hostile server and damaged stream files (issue 13, cases 4, 5 and 8):
the remote backend is bounded in bytes and time and strips control
characters; stream repairs only shrink; damaged files are one-line errors."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from infitool_edit.agent.backend import Turn
from infitool_edit.agent.remote import RemoteBackend, RemoteError
from infitool_edit.agent.stream import RECORD_DTYPE, StreamError, StreamLog
from infitool_edit.stream_records import HEADER, seal


def serve(handler_body):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # say it is vLLM, so the backend asks it for commands
            body = b'{"version": "0.12.0"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                handler_body(self.wfile)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return http, f"http://127.0.0.1:{http.server_address[1]}/v1"


def event(text) -> bytes:
    return f"data: {json.dumps({'choices': [{'text': text}]})}\n\n".encode()


def one_command(backend: RemoteBackend) -> str:
    turn = Turn(line_count=1, head_version=None, seed=0, read_draft=lambda: "")
    return "".join(backend.command(turn))


def test_a_server_that_never_stops_is_cut_at_the_byte_cap():
    def endless(out):
        for _ in range(100_000):
            out.write(event("x" * 64))

    http, url = serve(endless)
    try:
        line = one_command(RemoteBackend(url, "m", timeout=30, max_command_bytes=4096))
    finally:
        http.shutdown()
    assert len(line.encode()) <= 4096 + 4


def test_a_trickling_server_meets_a_deadline_for_the_whole_command():
    def trickle(out):
        for _ in range(40):
            out.write(b"d")
            out.flush()
            time.sleep(0.2)

    http, url = serve(trickle)
    started = time.monotonic()
    try:
        with pytest.raises(RemoteError, match="within"):
            one_command(RemoteBackend(url, "m", timeout=1.0))
    finally:
        http.shutdown()
    assert time.monotonic() - started < 5


def test_control_characters_never_reach_the_terminal():
    def escapes(out):
        out.write(event('insert $ "\x1b]52;c;cHduZWQ=\x07\x1b]0;title\x07hi\x9b31m"'))
        out.write(b"data: [DONE]\n\n")

    http, url = serve(escapes)
    try:
        line = one_command(RemoteBackend(url, "m", timeout=10))
    finally:
        http.shutdown()
    assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in line), repr(line)


def test_a_number_where_text_belongs_is_a_remote_error():
    def number(out):
        out.write(b'data: {"choices": [{"text": 5}]}\n\n')

    http, url = serve(number)
    try:
        with pytest.raises(RemoteError, match="where text belongs"):
            one_command(RemoteBackend(url, "m", timeout=10))
    finally:
        http.shutdown()


def written_stream(folder: Path) -> None:
    log = StreamLog(folder)
    for n in range(4):
        log.append(f"> chunk {n}\n", tokens=n + 1, version=n + 1, state=bytes([n]) * 16)
    log.close()


def sizes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_size for name in ("stream.txt", "records.bin", "states.bin")}


def test_a_truncated_stream_text_is_cut_back_never_padded(tmp_path, caplog):
    written_stream(tmp_path)
    text = tmp_path / "stream.txt"
    text.write_bytes(text.read_bytes()[:-5])
    before = sizes(tmp_path)
    log = StreamLog(tmp_path)
    assert len(log) == 3 and log.chunk(log.head) == "> chunk 2\n"
    assert all(size <= before[name] for name, size in sizes(tmp_path).items())
    assert b"\0" not in text.read_bytes()
    assert any("dropped 1 of 4" in r.getMessage() for r in caplog.records)
    log.close()


@pytest.mark.parametrize("field,value", [("end", 300 << 20), ("end", 2**62), ("state_slot", 2**40), ("parent", 7)])
def test_an_out_of_range_record_ends_the_valid_prefix(tmp_path, field, value):
    written_stream(tmp_path)
    # Resealed after the change, so its checksum holds and the range checks alone must refuse it.
    records = np.fromfile(tmp_path / "records.bin", dtype=RECORD_DTYPE, offset=len(HEADER))
    records[2][field] = value
    seal(records[2:3])
    (tmp_path / "records.bin").write_bytes(HEADER + records.tobytes())
    before = sizes(tmp_path)
    log = StreamLog(tmp_path)
    assert len(log) == 2
    assert all(size <= before[name] for name, size in sizes(tmp_path).items())
    log.close()


@pytest.mark.parametrize("content", ["", "abc", "-4", "99999999999999"])
def test_a_damaged_state_size_is_one_stream_error(tmp_path, content):
    written_stream(tmp_path)
    (tmp_path / "state-size").write_text(content)
    with pytest.raises(StreamError, match="state-size") as caught:
        StreamLog(tmp_path)
    assert "\n" not in str(caught.value) and "delete the folder" in str(caught.value)
