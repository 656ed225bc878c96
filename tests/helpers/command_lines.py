"""Random byte lines near the command language, for the tests that hold the
DFA, the parser and other regex engines to each other."""

from __future__ import annotations

from hypothesis import strategies as st

from infitool_edit.commands import serialize
from infitool_edit.commands.generate import commands
from infitool_edit.commands.grammar import VERBS

# Bytes that matter to the grammar, so that random lines get past the verb.
_INTERESTING = [
    *(verb.encode() for verb in VERBS), b" ", b'"', b"\\", b"n", b"t", b":", b"-", b"#", b"/",
    b"$", b"v", b"0", b"1", b"9", b"12", b"a", b"_", b"\t", b"\n", b"\x00", b"\x7f",
    "é".encode(), "🙂".encode(), b"\xc3", b"\xa9", b"\xff", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
]
interesting_lines = st.lists(st.sampled_from(_INTERESTING), max_size=12).map(b"".join)


@st.composite
def mutated_commands(draw):
    """A valid line with a few bytes inserted, deleted or replaced."""
    data = bytearray(serialize(draw(commands())).encode("utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        piece = draw(st.sampled_from(_INTERESTING + [bytes([draw(st.integers(0, 255))])]))
        if action == "insert":
            data[position:position] = piece
        elif action == "cut":
            del data[position:]
        elif position < len(data):
            data[position : position + 1] = piece if action == "replace" else b""
    return bytes(data)
